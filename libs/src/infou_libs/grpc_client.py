"""The one gRPC client: channel, deadline, interceptors, and domain errors from gRPC's rich status.

A service configures it and never builds a channel itself:

    catalog = ServiceClient(settings.catalog_addr, settings.grpc_deadline_seconds)
    stub = catalog_pb2_grpc.CatalogServiceStub(catalog.channel)
    reply = await catalog.call(stub.GetMainTopic, catalog_pb2.GetMainTopicRequest(id=1))
    ...
    await catalog.close()

`call` carries the deadline and raises what the other service raised, as the same domain error
(`NotFound`, `InvalidArgument`, … with its code and field); a service that did not answer, or not
in time, is the one `Unavailable`. Where a caller needs the raw `AioRpcError` (a stream, a
health check) it converts with `domain_error_from(exc)`.

Every channel balances round-robin over the addresses its target resolves to (give a
`dns:///name:port` target, e.g. a headless Kubernetes Service, to spread calls over every
replica), keeps idle connections alive with HTTP/2 pings (a dead peer is noticed in seconds,
not at the next call), and traces (OpenTelemetry) and times (Prometheus) every call.

The error's code and field travel as `google.rpc.Status` (grpcio-status) with an
`google.rpc.ErrorInfo` detail: reason = the error code, metadata["field"] = the field. The
server side (grpc_server.DomainErrorInterceptor) sends it with `rich_status(error)`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from opentelemetry.instrumentation.grpc import aio_client_interceptors

from infou_libs.errors import (
    AlreadyExists,
    BudgetExceeded,
    DomainError,
    FailedPrecondition,
    Gone,
    InvalidArgument,
    NotFound,
    RateLimited,
    Unauthenticated,
    Unavailable,
    Unimplemented,
)
from infou_libs.metrics import GRPC_CLIENT_LATENCY

R = TypeVar("R")

ERROR_DOMAIN = "infou"
FIELD_KEY = "field"

# Keepalive: ping an idle connection every 30 s, give up on it after 10 s without an answer.
# The server (grpc_server.SERVER_OPTIONS) accepts pings this often.
KEEPALIVE_TIME_MS = 30_000
KEEPALIVE_TIMEOUT_MS = 10_000

# Reconnecting: a peer that restarted is tried again within a second, not after gRPC's default
# backoff (growing to 120 s), during which every call to it fails fast with UNAVAILABLE (503).
# (Not grpc.min_reconnect_backoff_ms: gRPC core takes it as the connect timeout, 20 s by default.)
RECONNECT_BACKOFF_MS = (250, 1_000)
SERVICE_CONFIG: dict[str, Any] = {"loadBalancingConfig": [{"round_robin": {}}]}

CHANNEL_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("grpc.service_config", json.dumps(SERVICE_CONFIG)),
    ("grpc.initial_reconnect_backoff_ms", RECONNECT_BACKOFF_MS[0]),
    ("grpc.max_reconnect_backoff_ms", RECONNECT_BACKOFF_MS[1]),
    ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
    ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
)

_KINDS: dict[grpc.StatusCode, type[DomainError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.OUT_OF_RANGE: Gone,
    grpc.StatusCode.RESOURCE_EXHAUSTED: RateLimited,
    grpc.StatusCode.UNIMPLEMENTED: Unimplemented,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: Unavailable,
}


class _ClientMetrics(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]
    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], client_call_details: Any, request: Any
    ) -> Any:
        start = time.perf_counter()
        method = client_call_details.method
        method = method.decode() if isinstance(method, bytes) else str(method)
        call = await continuation(client_call_details, request)
        try:
            await call
            code = "OK"
        except grpc.aio.AioRpcError as exc:
            code = exc.code().name
        GRPC_CLIENT_LATENCY.labels(method, code).observe(time.perf_counter() - start)
        return call


def open_channel(target: str) -> grpc.aio.Channel:
    """A channel to `target` (host:port or dns:///host:port) with the production settings."""
    interceptors: list[Any] = [*aio_client_interceptors(), _ClientMetrics()]  # type: ignore[no-untyped-call]
    return grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS, interceptors=interceptors)


def rich_status(error: DomainError) -> grpc.Status:
    """The error as gRPC's rich status: code, message, and an ErrorInfo with code and field."""
    info = error_details_pb2.ErrorInfo(reason=error.code, domain=ERROR_DOMAIN)
    if error.field:
        info.metadata[FIELD_KEY] = error.field
    detail = any_pb2.Any()
    detail.Pack(info)
    details = [detail]
    if error.retry_after is not None:
        retry = error_details_pb2.RetryInfo()
        retry.retry_delay.FromSeconds(error.retry_after)
        retry_detail = any_pb2.Any()
        retry_detail.Pack(retry)
        details.append(retry_detail)
    status = status_pb2.Status(code=error.status.value[0], message=error.message, details=details)
    return rpc_status.to_status(status)


def _error_details(
    exc: grpc.aio.AioRpcError,
) -> tuple[error_details_pb2.ErrorInfo | None, int | None]:
    """The ErrorInfo and the RetryInfo delay (whole seconds) of the call's rich status."""
    try:
        status = rpc_status.from_call(exc)  # type: ignore[arg-type]
    except ValueError:  # a status whose code or message disagrees with the call's
        return None, None
    if status is None:
        return None, None
    info: error_details_pb2.ErrorInfo | None = None
    retry_after: int | None = None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            retry_after = max(1, retry.retry_delay.seconds)
    return info, retry_after


def domain_error_from(exc: grpc.aio.AioRpcError) -> DomainError:
    """The domain error another service raised (its code and field kept); a service that did
    not answer, or not in time, is `Unavailable`. The error keeps the call's status code."""
    info, retry_after = _error_details(exc)
    code = info.reason if info and info.reason else exc.code().name
    field = (info.metadata.get(FIELD_KEY) if info else None) or None
    kind = _KINDS.get(exc.code(), DomainError)
    if kind is RateLimited and code == BudgetExceeded.code:
        kind = BudgetExceeded
    error = kind(exc.details() or exc.code().name, field=field, code=code, retry_after=retry_after)
    error.status = exc.code()
    return error


class ServiceClient:
    """One channel to one service, and its calls with the deadline."""

    def __init__(self, target: str, deadline: float) -> None:
        self.channel = open_channel(target)
        self.deadline = deadline

    async def call(self, method: Callable[..., Awaitable[R]], request: Any) -> R:
        """`method(request)` within the deadline; a refusal raises the same domain error."""
        try:
            return await method(request, timeout=self.deadline)
        except grpc.aio.AioRpcError as exc:
            raise domain_error_from(exc) from exc

    async def close(self) -> None:
        await self.channel.close(grace=None)
