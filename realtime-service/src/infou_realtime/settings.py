"""realtime-service settings (prefix INFOU_)."""

from __future__ import annotations

from pydantic import Field

from infou_libs.settings import CommonSettings


class RealtimeSettings(CommonSettings):
    service_name: str = "realtime"
    grpc_port: int = Field(default=50055, ge=0, le=65535)  # the gateway's default address
    # session-service: the snapshot each watcher starts from.
    session_addr: str = "127.0.0.1:50052"
    # A heartbeat on every Watch stream when nothing else was sent for this long.
    heartbeat_seconds: float = Field(default=15.0, gt=0, le=300)
    # Messages a watcher may fall behind by; one more and it is dropped (a slow or stuck
    # client never holds up the others or grows memory without bound).
    watcher_queue_size: int = Field(default=256, ge=1, le=100_000)
