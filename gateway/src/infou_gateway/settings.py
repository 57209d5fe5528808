"""Gateway settings (prefix INFOU_)."""

from __future__ import annotations

import ipaddress
from typing import Annotated, ClassVar

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from infou_libs.settings import CommonSettings


class GatewaySettings(CommonSettings):
    service_name: str = "gateway"
    version: str = "2.0.0"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    # Bind the port with SO_REUSEPORT so several gateway processes on one host share it, the
    # kernel spreading connections over them (as a Service spreads them over replicas); off,
    # a second process on the port fails to start.
    reuse_port: bool = False
    catalog_addr: str = "127.0.0.1:50051"
    session_addr: str = "127.0.0.1:50052"
    generation_addr: str = "127.0.0.1:50053"
    feedback_addr: str = "127.0.0.1:50054"
    realtime_addr: str = "127.0.0.1:50055"
    cors_origins: list[str] = Field(default_factory=lambda: ["http://localhost:3000"])
    health_timeout_seconds: float = Field(default=1.5, gt=0, le=30)
    cache_enabled: bool = True
    # Catalog responses kept encoded in each process's memory this long in front of Redis; a
    # replica that did not consume a CatalogChanged event serves its copy at most this long.
    local_cache_seconds: float = Field(default=2.0, ge=0, le=60)
    # Successful requests written to the access log (refusals and errors always are).
    access_log_sample_ratio: float = Field(default=0.01, ge=0, le=1)
    # Token-checked reads (session_cache.py): a session's status and curriculum show what no
    # progress message announced within this; a ready article is kept this long (never past
    # its session's expiry); entries each process keeps in memory.
    session_cache_seconds: float = Field(default=30.0, ge=0, le=300)
    article_cache_seconds: float = Field(default=86_400.0, ge=0, le=7 * 86_400)
    session_cache_max_entries: int = Field(default=5_000, ge=1, le=1_000_000)
    rate_limit_per_minute: int = Field(default=100, ge=0)  # per client; 0 turns it off
    # How often each replica shares its request counts through Redis: a client can pass its
    # limit by what it sends to the other replicas within this (ratelimit.py).
    rate_limit_sync_seconds: float = Field(default=0.2, gt=0, le=10)
    # Proxies (CIDRs, comma-separated) whose X-Forwarded-For is believed; none by default, so
    # the client is the socket's peer (uvicorn's own forwarded-header trust follows this too).
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Creations per client per rolling day (an API key may carry its own).
    sessions_per_client_per_day: int = Field(default=50, ge=0)
    generations_per_client_per_day: int = Field(default=100, ge=0)
    # Concurrent WebSockets per session token and per client; over it the handshake gets 429.
    ws_max_per_session: int = Field(default=5, ge=1, le=100_000)
    ws_max_per_client: int = Field(default=50, ge=1, le=100_000)
    # Anonymous clients are refused (401) when true: only X-API-Key holders get in.
    require_api_key: bool = False
    # How long an API key lookup is reused: a revocation takes effect within this.
    api_key_cache_seconds: float = Field(default=5.0, ge=0, le=60)
    # A WebSocket client that does not take a message within this long is dropped.
    ws_send_timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    # Messages of a session kept for its watchers (one shared buffer per session); a watcher
    # further behind than this is dropped as slow (1008) and reconnects from a snapshot.
    ws_feed_buffer: int = Field(default=256, ge=8, le=100_000)
    # Connection records (open, heartbeat, close) go to realtime-service in one batch this often.
    ws_record_flush_seconds: float = Field(default=0.25, gt=0, le=60)
    # uvicorn's WebSocket implementation: "websockets-sansio" runs no task of its own per
    # connection, only a small queue of received events ("websockets" runs three tasks and a
    # frame queue per connection).
    ws_protocol: str = Field(
        default="websockets-sansio", pattern="^(websockets-sansio|websockets|wsproto|auto)$"
    )
    # permessage-deflate costs ~40 KB of zlib state per connection and a compression per
    # watcher per message (the frame is no longer encoded once): off unless turned on.
    ws_per_message_deflate: bool = False
    # The largest message a client may send (it sends pings only).
    ws_max_message_bytes: int = Field(default=4096, ge=125, le=16 * 1024 * 1024)
    # A request body larger than this is refused (413) while it is read, before it is parsed.
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    # The public address clients use; https turns HSTS on.
    public_url: str = ""
    # /docs and /openapi.json; unset: on, except in production.
    docs_enabled: bool | None = None
    # The gateway holds no database: it needs no keyring.
    stores_personal_data: ClassVar[bool] = False

    @property
    def serves_docs(self) -> bool:
        if self.docs_enabled is None:
            return self.environment != "production"
        return self.docs_enabled

    def production_problems(self) -> list[str]:
        problems = super().production_problems()
        if "*" in self.cors_origins:
            problems.append("INFOU_CORS_ORIGINS must name the allowed origins, not '*'")
        if self.rate_limit_per_minute == 0:
            problems.append("INFOU_RATE_LIMIT_PER_MINUTE is 0 (no rate limit)")
        return problems

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_networks(cls, value: list[str]) -> list[str]:
        for cidr in value:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError as exc:
                raise ValueError(f"INFOU_TRUSTED_PROXIES: {cidr!r} is not a CIDR") from exc
        return value

    def service_addresses(self) -> dict[str, str]:
        return {
            "catalog": self.catalog_addr,
            "session": self.session_addr,
            "generation": self.generation_addr,
            "feedback": self.feedback_addr,
            "realtime": self.realtime_addr,
        }
