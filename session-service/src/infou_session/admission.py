"""Admission before spending, asked of generation-service (which owns the LLM budget): a
session's estimated cost is held before its row and its curriculum job are written, and what it
did not spend is given back once its generation ends."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import grpc

from infou_libs.errors import DomainError, Unavailable
from infou_libs.grpc_client import ServiceClient
from infou_libs.logging import get_logger
from infou_protos.generation.v1 import generation_pb2, generation_pb2_grpc
from infou_session.progress import ProgressMessage, ProgressPublisher

log = get_logger(__name__)

# Refusals generation-service decided on purpose (BUDGET_EXHAUSTED, the cost cap,
# CONTENT_FLAGGED) pass through with their status, code, field and Retry-After; anything else
# means the budget could not be checked, and nothing is created unadmitted (HTTP 503).
_DECIDED = {
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.FAILED_PRECONDITION,
}


class AdmissionClient:
    """ReserveAdmission / ReleaseAdmission on generation-service, with a deadline."""

    def __init__(self, generation_addr: str, deadline: float) -> None:
        self._client = ServiceClient(generation_addr, deadline)
        self._stub = generation_pb2_grpc.GenerationServiceStub(self._client.channel)

    async def close(self) -> None:
        await self._client.close()

    async def reserve(
        self,
        session_id: str,
        articles: int,
        client_id: str,
        client_share: float,
        *,
        learner_text: Mapping[str, str] | None = None,
    ) -> float:
        """Holds the session's estimate (a curriculum and its articles); returns it in USD.

        `learner_text` (public field → text) is moderated first; a flagged field is refused
        INVALID_ARGUMENT, code CONTENT_FLAGGED, naming the field.
        """
        request = generation_pb2.ReserveAdmissionRequest(
            kind="session",
            reference_id=session_id,
            curricula=1,
            articles=articles,
            client_id=client_id,
            client_budget_share=client_share,
            learner_text=dict(learner_text or {}),
        )
        try:
            granted = await self._client.call(self._stub.ReserveAdmission, request)
        except DomainError as exc:
            if exc.status in _DECIDED:
                raise
            # The answer was lost (a deadline, a reset), not necessarily the hold: give back
            # whatever generation-service may have admitted, or it holds budget until it expires
            # and, under overload, refuses later creates (releasing an unknown reference is a
            # no-op).
            await self.release(session_id)
            raise Unavailable("the LLM budget could not be checked just now; try again") from exc
        return float(granted.estimated_cost_usd)

    async def release(self, session_id: str) -> None:
        """Gives back what the session did not spend; a failure is logged (the hold expires)."""
        request = generation_pb2.ReleaseAdmissionRequest(reference_id=session_id)
        try:
            await self._client.call(self._stub.ReleaseAdmission, request)
        except DomainError as exc:
            log.warning("admission_release_failed", session_id=session_id, error=exc.code)


def generation_ended(messages: Sequence[ProgressMessage]) -> bool:
    """Whether these progress messages say the session's generation is over (ready or failed)."""
    for message in messages:
        if message.type == "generation_complete":
            return True
        if message.type == "generation_progress" and message.data.get("status") == "failed":
            return True
    return False


class ReleasingPublisher(ProgressPublisher):
    """Publishes progress; when a session's generation has ended, releases its admission."""

    def __init__(self, publisher: ProgressPublisher, admission: AdmissionClient) -> None:
        self._publisher = publisher
        self._admission = admission

    async def publish(self, session_id: str, messages: Sequence[ProgressMessage]) -> None:
        await self._publisher.publish(session_id, messages)
        if generation_ended(messages):
            await self._admission.release(session_id)
