"""gRPC stubs of every service, with deadlines, tracing and client metrics."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.instrumentation.grpc import aio_client_interceptors

from infou_gateway.settings import GatewaySettings
from infou_libs.metrics import GRPC_CLIENT_LATENCY
from infou_protos.catalog.v1 import catalog_pb2_grpc
from infou_protos.feedback.v1 import feedback_pb2_grpc
from infou_protos.generation.v1 import generation_pb2_grpc
from infou_protos.realtime.v1 import realtime_pb2_grpc
from infou_protos.session.v1 import session_pb2_grpc


class _ClientMetrics(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc,type-arg]
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


class ServiceClients:
    """One channel per service; every call carries the configured deadline."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.deadline = settings.grpc_deadline_seconds
        self.channels: dict[str, grpc.aio.Channel] = {
            name: grpc.aio.insecure_channel(
                addr,
                interceptors=[*aio_client_interceptors(), _ClientMetrics()],  # type: ignore[no-untyped-call,list-item]
            )
            for name, addr in settings.service_addresses().items()
        }
        self.catalog = catalog_pb2_grpc.CatalogServiceStub(self.channels["catalog"])
        self.session = session_pb2_grpc.SessionServiceStub(self.channels["session"])
        self.generation = generation_pb2_grpc.GenerationServiceStub(self.channels["generation"])
        self.feedback = feedback_pb2_grpc.FeedbackServiceStub(self.channels["feedback"])
        self.realtime = realtime_pb2_grpc.RealtimeServiceStub(self.channels["realtime"])

    async def health(self, name: str, timeout: float) -> str:
        """The service's standard gRPC health: serving, not_serving or unavailable."""
        stub = health_pb2_grpc.HealthStub(self.channels[name])
        try:
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        except grpc.aio.AioRpcError:
            return "unavailable"
        return (
            "serving" if reply.status == health_pb2.HealthCheckResponse.SERVING else "not_serving"
        )

    async def close(self) -> None:
        for channel in self.channels.values():
            await channel.close(grace=None)
