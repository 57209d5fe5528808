"""Admission before spending, asked of generation-service (which owns the LLM budget): a
session's estimated cost is held before its row and its curriculum job are written, and what it
did not spend is given back once its generation ends."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc
from opentelemetry.instrumentation.grpc import aio_client_interceptors

from infou_libs.errors import ERROR_CODE_KEY, ERROR_FIELD_KEY, RETRY_AFTER_KEY, DomainError
from infou_libs.logging import get_logger
from infou_protos.generation.v1 import generation_pb2, generation_pb2_grpc
from infou_session.progress import ProgressMessage, ProgressPublisher

log = get_logger(__name__)


class AdmissionUnavailable(DomainError):
    """generation-service did not answer: nothing is created unadmitted (HTTP 503)."""

    status = grpc.StatusCode.UNAVAILABLE
    code = "SERVICE_UNAVAILABLE"


class AdmissionRefused(DomainError):
    """generation-service refused the admission on purpose (BUDGET_EXHAUSTED, the cost cap):
    passed on with its status, code, field and Retry-After."""

    def __init__(self, exc: grpc.aio.AioRpcError) -> None:
        metadata: Any = exc.trailing_metadata() or ()
        trailers = {str(item[0]): str(item[1]) for item in metadata}
        retry_after = trailers.get(RETRY_AFTER_KEY, "")
        super().__init__(
            exc.details() or "refused",
            field=trailers.get(ERROR_FIELD_KEY) or None,
            code=trailers.get(ERROR_CODE_KEY) or exc.code().name,
            retry_after=int(retry_after) if retry_after.isdigit() else None,
        )
        self.status = exc.code()


# Refusals generation-service decided on purpose pass through with their status and code.
_DECIDED = {
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.FAILED_PRECONDITION,
}


class AdmissionClient:
    """ReserveAdmission / ReleaseAdmission on generation-service, with a deadline."""

    def __init__(self, generation_addr: str, deadline: float) -> None:
        interceptors = aio_client_interceptors()  # type: ignore[no-untyped-call]
        self._channel = grpc.aio.insecure_channel(generation_addr, interceptors=interceptors)
        self._stub = generation_pb2_grpc.GenerationServiceStub(self._channel)
        self._deadline = deadline

    async def close(self) -> None:
        await self._channel.close(grace=None)

    async def reserve(
        self, session_id: str, articles: int, client_id: str, client_share: float
    ) -> float:
        """Holds the session's estimate (a curriculum and its articles); returns it in USD."""
        try:
            granted = await self._stub.ReserveAdmission(
                generation_pb2.ReserveAdmissionRequest(
                    kind="session",
                    reference_id=session_id,
                    curricula=1,
                    articles=articles,
                    client_id=client_id,
                    client_budget_share=client_share,
                ),
                timeout=self._deadline,
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() in _DECIDED:
                raise AdmissionRefused(exc) from None
            raise AdmissionUnavailable(
                "the LLM budget could not be checked just now; try again"
            ) from exc
        return float(granted.estimated_cost_usd)

    async def release(self, session_id: str) -> None:
        """Gives back what the session did not spend; a failure is logged (the hold expires)."""
        try:
            await self._stub.ReleaseAdmission(
                generation_pb2.ReleaseAdmissionRequest(reference_id=session_id),
                timeout=self._deadline,
            )
        except grpc.aio.AioRpcError as exc:
            log.warning("admission_release_failed", session_id=session_id, error=exc.code().name)


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
