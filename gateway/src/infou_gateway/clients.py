"""gRPC stubs of every service, on libs' one client (infou_libs.grpc_client): load balancing,
keepalive, tracing and client metrics; every call carries the configured deadline."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from infou_gateway.settings import GatewaySettings
from infou_libs.grpc_client import open_channel
from infou_protos.catalog.v1 import catalog_pb2_grpc
from infou_protos.feedback.v1 import feedback_pb2_grpc
from infou_protos.generation.v1 import generation_pb2_grpc
from infou_protos.realtime.v1 import realtime_pb2_grpc
from infou_protos.session.v1 import session_pb2_grpc


class ServiceClients:
    """One channel per service; every call carries the configured deadline."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.deadline = settings.grpc_deadline_seconds
        self.channels: dict[str, grpc.aio.Channel] = {
            name: open_channel(addr) for name, addr in settings.service_addresses().items()
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
