"""Typed settings shared by every InfoU process (prefix INFOU_), validated at start-up."""

from __future__ import annotations

import ipaddress
import socket
from typing import ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    """What every process needs: engines, observability and its own identity."""

    model_config = SettingsConfigDict(env_prefix="INFOU_", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    service_name: str = "infou"
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/infou"
    database_pool_size: int = Field(default=10, ge=1, le=200)
    # A pooled connection idle this long is pinged (one round trip) before a use case gets it;
    # 0 pings every reuse. Connections the server closed are caught at every checkout for free.
    database_ping_idle_seconds: float = Field(default=5.0, ge=0, le=3600)
    # A direct (session) connection for what transaction pooling (PgBouncer) cannot carry:
    # migrations' advisory lock and the outbox relay's LISTEN. Empty: database_url.
    database_session_url: str = ""
    nats_url: str = "nats://127.0.0.1:4222"
    redis_url: str = "redis://127.0.0.1:6379/0"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = True
    otel_exporter_otlp_endpoint: str = ""
    # Share of new traces recorded (parent-based: a sampled caller's trace is always continued).
    trace_sample_ratio: float = Field(default=0.05, ge=0, le=1)
    metrics_port: int = Field(default=0, ge=0, le=65535)
    # The asyncio event loop of the gRPC services: uvloop (libuv), or the standard library's.
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"
    grpc_port: int = Field(default=0, ge=0, le=65535)
    grpc_deadline_seconds: float = Field(default=5.0, gt=0, le=120)
    # On SIGTERM, jobs in hand get this long to finish (keep below terminationGracePeriodSeconds).
    shutdown_grace_seconds: float = Field(default=25.0, ge=0, le=600)
    # Key-encryption keys for personal data at rest: `id:base64key,…`, the last one encrypts
    # (infou_libs.crypto). Empty: a fixed development key, refused in production.
    data_keys: SecretStr = SecretStr("")
    # Personal data (learner input, feedback comments, connection details) is deleted or
    # anonymised this many days after it was written; the retention job runs every interval.
    personal_data_ttl_days: int = Field(default=90, ge=1, le=3650)
    retention_interval_seconds: float = Field(default=3600.0, ge=1, le=86_400)
    # Whether this process keeps personal data in its database (and so needs the keyring).
    stores_personal_data: ClassVar[bool] = True

    @field_validator("data_keys")
    @classmethod
    def _data_keys_parse(cls, value: SecretStr) -> SecretStr:
        if value.get_secret_value().strip():
            from infou_libs.crypto import Keyring

            Keyring.parse(value.get_secret_value())
        return value

    @model_validator(mode="after")
    def _production_refuses_unsafe_values(self) -> CommonSettings:
        if self.environment == "production":
            problems = self.production_problems()
            if problems:
                raise ValueError("unsafe production settings: " + "; ".join(problems))
        return self

    def production_problems(self) -> list[str]:
        """What makes these settings unsafe in production, one message per setting."""
        problems = []
        if self.stores_personal_data and not self.data_keys.get_secret_value().strip():
            problems.append("INFOU_DATA_KEYS is missing (personal data must be encrypted)")
        if "127.0.0.1" in self.database_url and "@" in self.database_url:
            # A production database with the development URL is a misconfiguration.
            problems.append("INFOU_DATABASE_URL points at the development default")
        return problems

    @property
    def schema_url_safe(self) -> str:
        """The database URL without credentials, for logs."""
        return mask_url(self.database_url)


def mask_url(url: str) -> str:
    """Hides the password of a URL (scheme://user:secret@host → scheme://user:***@host)."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else f"{scheme}://{user}@{host}"


def private_address_reason(url: str) -> str:
    """Why a URL must not be called from production (loopback, link-local, private), or ""."""
    if not url:
        return ""
    host = urlsplit(url).hostname
    if not host:
        return "is not a URL with a host"
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return f"names a host that does not resolve ({host})"
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address.is_loopback or address.is_link_local or address.is_private:
            return f"resolves to a non-public address ({address})"
        if address.is_reserved or address.is_multicast or address.is_unspecified:
            return f"resolves to a reserved address ({address})"
    return ""
