"""Typed settings shared by every InfoU process (prefix INFOU_), validated at start-up."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    """What every process needs: engines, observability and its own identity."""

    model_config = SettingsConfigDict(env_prefix="INFOU_", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    service_name: str = "infou"
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/infou"
    database_pool_size: int = Field(default=10, ge=1, le=200)
    # A direct (session) connection for what transaction pooling (PgBouncer) cannot carry:
    # migrations' advisory lock and the outbox relay's LISTEN. Empty: database_url.
    database_session_url: str = ""
    nats_url: str = "nats://127.0.0.1:4222"
    redis_url: str = "redis://127.0.0.1:6379/0"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = True
    otel_exporter_otlp_endpoint: str = ""
    metrics_port: int = Field(default=0, ge=0, le=65535)
    grpc_port: int = Field(default=0, ge=0, le=65535)
    grpc_deadline_seconds: float = Field(default=5.0, gt=0, le=120)
    # On SIGTERM, jobs in hand get this long to finish (keep below terminationGracePeriodSeconds).
    shutdown_grace_seconds: float = Field(default=25.0, ge=0, le=600)

    @model_validator(mode="after")
    def _production_needs_real_settings(self) -> CommonSettings:
        # A production database with the development URL is a misconfiguration.
        development_url = "127.0.0.1" in self.database_url and "@" in self.database_url
        if self.environment == "production" and development_url:
            raise ValueError("INFOU_DATABASE_URL points at the development default")
        return self

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
