"""gRPC server bootstrap: health, reflection, and the interceptors every service shares."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection
from opentelemetry.instrumentation.grpc import aio_server_interceptor

from infou_libs.errors import DomainError
from infou_libs.grpc_client import KEEPALIVE_TIME_MS, rich_status
from infou_libs.logging import get_logger
from infou_libs.metrics import GRPC_SERVER_LATENCY

log = get_logger(__name__)

Context = grpc.aio.ServicerContext[Any, Any]
"""The servicer context every RPC handler receives."""

Registration = tuple[Callable[[Any, grpc.aio.Server], None], Any, str]
"""(add_XServicer_to_server, servicer instance, full service name)."""

DATABASE_HEALTH = "infou.database"
"""The health-checked name whose status is the service's own database (SERVING when it answers):
how the gateway's /health learns about the databases without connecting to any."""


class DomainErrorInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Logs and times every call and turns domain errors into gRPC status codes."""

    def __init__(self, service: str) -> None:
        self._service = service

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        method = str(handler_call_details.method)
        if handler is None or method.startswith("/grpc."):
            return handler
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(handler.unary_unary, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(handler.unary_stream, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler

    def _wrap_unary(self, fn: Any, method: str) -> Any:
        async def wrapped(request: Any, context: Context) -> Any:
            start = time.perf_counter()
            code = "OK"
            try:
                return await fn(request, context)
            except DomainError as exc:
                code = exc.status.name
                await _abort(context, exc)
            except Exception as exc:
                if isinstance(exc, grpc.aio.AbortError):
                    code = "ABORTED_BY_HANDLER"
                    raise
                code = "INTERNAL"
                log.exception("grpc_unhandled_error", method=method)
                await context.abort(grpc.StatusCode.INTERNAL, "internal error")
            finally:
                self._observe(method, code, start)

        return wrapped

    def _wrap_stream(self, fn: Any, method: str) -> Any:
        async def wrapped(request: Any, context: Context) -> Any:
            start = time.perf_counter()
            code = "OK"
            try:
                async for item in fn(request, context):
                    yield item
            except DomainError as exc:
                code = exc.status.name
                await _abort(context, exc)
            finally:
                self._observe(method, code, start)

        return wrapped

    def _observe(self, method: str, code: str, start: float) -> None:
        elapsed = time.perf_counter() - start
        GRPC_SERVER_LATENCY.labels(self._service, method, code).observe(elapsed)
        # Every call is in the latency histogram; the log line is for what someone must read: a
        # failed or slow call (at INFO), the rest at DEBUG (a JSON line per internal call cost
        # about a tenth of session-service's CPU per create; the gateway logs each request).
        fields = {"endpoint": method, "code": code, "duration_ms": round(elapsed * 1000, 1)}
        if code == "OK" and elapsed < SLOW_CALL_SECONDS:
            log.debug("grpc_call", **fields)
        else:
            log.info("grpc_call", **fields)


async def _abort(context: Context, exc: DomainError) -> None:
    status = rich_status(exc)
    await context.abort(status.code, status.details, status.trailing_metadata)


# A successful call at least this long is logged at INFO like a failed one.
SLOW_CALL_SECONDS = 0.5


# Accept the clients' keepalive pings (grpc_client.CHANNEL_OPTIONS), also between calls.
SERVER_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.so_reuseport", 0),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_recv_ping_interval_without_data_ms", KEEPALIVE_TIME_MS // 2),
    ("grpc.http2.max_ping_strikes", 0),
)


# The health service name a liveness probe asks: SERVING for as long as the process runs, never
# turned NOT_SERVING by a dependency outage (that is what the overall "" status is for: readiness).
LIVENESS_SERVICE = "liveness"


class GrpcServer:
    """One aio server with the standard health and reflection services."""

    def __init__(self, service: str, registrations: Sequence[Registration], port: int) -> None:
        self.service = service
        self.health = HealthServicer()
        self.server = grpc.aio.server(
            interceptors=[aio_server_interceptor(), DomainErrorInterceptor(service)],  # type: ignore[no-untyped-call]
            options=SERVER_OPTIONS,
        )
        names = [name for _add, _servicer, name in registrations]
        for add, servicer, _name in registrations:
            add(servicer, self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            [
                *names,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ],
            self.server,
        )
        self._names = names
        self.port = self.server.add_insecure_port(f"0.0.0.0:{port}")

    async def start(self) -> None:
        await self.server.start()
        await self.health.set(LIVENESS_SERVICE, health_pb2.HealthCheckResponse.SERVING)
        await self.set_serving(True)
        await self.set_database(True)
        log.info("grpc_serving", port=self.port, services=self._names)

    async def set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ["", *self._names]:
            await self.health.set(name, status)

    async def set_database(self, up: bool) -> None:
        """Reports whether this service's database answers (health name DATABASE_HEALTH)."""
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if up
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        await self.health.set(DATABASE_HEALTH, status)

    async def stop(self, grace: float = 5.0) -> None:
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
