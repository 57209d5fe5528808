"""session-service settings (prefix INFOU_)."""

from __future__ import annotations

from pydantic import Field

from infou_libs.settings import CommonSettings


class SessionSettings(CommonSettings):
    service_name: str = "session"
    session_ttl_days: int = Field(default=30, ge=1, le=365)
