"""jobs.subtopics.generate: personalised sub-topics for one POST /sub-topics/generate."""

from __future__ import annotations

from nats.aio.msg import Msg

from infou_generation import service
from infou_generation.admission import Admissions
from infou_generation.jobs.runner import JobContext, job_consumer
from infou_generation.llm.types import BudgetExceededError
from infou_libs import subjects
from infou_libs.consume import decode
from infou_libs.logging import get_logger
from infou_libs.messaging import DurableConsumer, PermanentError
from infou_protos.events.v1 import events_pb2

log = get_logger(__name__)


def consumer(ctx: JobContext) -> DurableConsumer:
    admissions = Admissions(ctx.sessions, ctx.settings)

    async def handle(msg: Msg) -> None:
        job = decode(msg, events_pb2.GenerateSubTopicsJob)
        try:
            await service.generate_subtopics(
                ctx.sessions, ctx.engine, ctx.catalog, job.generation_id
            )
        except (service.GenerationGone, ValueError) as exc:
            # An unknown generation or a context the prompts refuse: retrying cannot help.
            raise PermanentError(str(exc)) from exc
        # Done (or failed for budget): what its admission did not spend goes back.
        await admissions.release(job.generation_id)

    async def exhausted(msg: Msg, exc: BaseException) -> None:
        try:
            job = events_pb2.GenerateSubTopicsJob.FromString(msg.data)
        except Exception:
            return
        if isinstance(exc, BudgetExceededError):
            code, message = service.LLM_BUDGET_EXCEEDED, exc.message
        else:
            code, message = service.GENERATION_FAILED, service.GENERATION_FAILED_MESSAGE
        log.error("subtopics_job_gave_up", generation_id=job.generation_id, error=str(exc)[:500])
        await service.fail_subtopic_generation(ctx.sessions, job.generation_id, code, message)
        await admissions.release(job.generation_id)

    return job_consumer(ctx, subjects.SUBTOPICS_JOB_KIND, handle, on_exhausted=exhausted)
