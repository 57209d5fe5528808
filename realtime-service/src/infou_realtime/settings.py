"""realtime-service settings (prefix INFOU_)."""

from __future__ import annotations

from infou_libs.settings import CommonSettings


class RealtimeSettings(CommonSettings):
    service_name: str = "realtime"
