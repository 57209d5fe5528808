"""What generation-service publishes and consumes.

Publishes, through its outbox (in the transaction of the change it announces):

- jobs.subtopics.generate (GenerateSubTopicsJob): its own work queue, with each
  POST /sub-topics/generate request (service.request_subtopics);
- events.generation.subtopics_generated (SubTopicsGenerated) when a sub-topic generation is
  stored (service.generate_subtopics);
- events.generation.curriculum_generated, article_generated, article_converted and task_failed:
  the outcome of each session job (jobs/session_tasks.py), claimed by the job's event id.

Publishes on core NATS (ephemeral, never stored): a rate-limit notice on
`progress.session.<id>` while a session job waits a provider's limit out.

Consumes, each with its own durable consumer:

- the work queues jobs.subtopics.generate, jobs.curriculum.generate, jobs.article.generate and
  jobs.article.convert (JOBS stream; the handlers live in `jobs/`, one module per kind);
- events.feedback.submitted (FeedbackSubmitted): learners' ratings of the articles of generated
  sub-topics become the statistics of `generated_sub_topics` (positive_feedback_count,
  negative_feedback_count). Each event is claimed by id in `generation.processed_events` in the
  transaction of its effect. A rating counts once per (session, article): an event that
  replaced an earlier rating names it (previous_rating) and moves the count instead of adding
  (like → dislike: one positive fewer, one negative more). The changes commute, so the counts
  are right whatever order the events are applied in. Articles of curated sub-topics are the
  catalog's to rate.

Every subject and stream name comes from `infou_libs.subjects`; every consumer goes through the
one consume path (`infou_libs.consume`).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from infou_generation import repository
from infou_generation.jobs import article, conversion, curriculum, runner, subtopics
from infou_generation.jobs.runner import JobConsumerFactory
from infou_generation.models import processed_events
from infou_libs import subjects
from infou_libs.consume import Route, event_consumer
from infou_libs.logging import get_logger
from infou_libs.messaging import DurableConsumer, PermanentError
from infou_libs.runtime import Runtime
from infou_protos.events.v1 import events_pb2

log = get_logger(__name__)

FEEDBACK_CONSUMER = "generation-feedback"

# One consumer per job kind (see infou_generation.jobs): add a kind's factory here.
JOB_CONSUMERS: tuple[JobConsumerFactory, ...] = (
    subtopics.consumer,
    curriculum.consumer,
    article.consumer,
    conversion.consumer,
)


def rating_change(rating: str, previous_rating: str) -> tuple[int, int]:
    """(positive, negative) change of one rating that replaces `previous_rating` (or none)."""
    positive = (rating == "like") - (previous_rating == "like")
    negative = (rating == "dislike") - (previous_rating == "dislike")
    return positive, negative


async def on_feedback_submitted(db: AsyncSession, event: events_pb2.FeedbackSubmitted) -> None:
    if event.rating not in ("like", "dislike"):
        raise PermanentError(f"unknown rating {event.rating!r}")
    if event.generated_sub_topic_id <= 0:
        return
    positive, negative = rating_change(event.rating, event.previous_rating)
    if not positive and not negative:
        return
    if not await repository.add_subtopic_feedback(
        db, event.generated_sub_topic_id, positive, negative
    ):
        log.info("feedback_for_unknown_sub_topic", sub_topic_id=event.generated_sub_topic_id)


def feedback_consumer(rt: Runtime) -> DurableConsumer:
    routes = {
        subjects.FEEDBACK_SUBMITTED: Route(events_pb2.FeedbackSubmitted, on_feedback_submitted)
    }
    return event_consumer(rt.js, FEEDBACK_CONSUMER, routes, rt.sessions, processed_events)


def consumers(rt: Runtime) -> Sequence[DurableConsumer]:
    """Every consumer of this process (for `ServiceSpec.consumers`)."""
    return [*runner.consumers(rt, JOB_CONSUMERS), feedback_consumer(rt)]
