"""What watchers of a session are told while the engine waits out a rate limit (PRD §3.6)."""

from __future__ import annotations

import math
from typing import Any

RATE_LIMIT_CODE = "LLM_RATE_LIMIT"
RATE_LIMIT_MESSAGE = "LLM API 요청 한도 초과. 잠시 후 다시 시도됩니다."


def korean_duration(seconds: float) -> str:
    """Whole seconds, rounded up, as PRD writes them: '30초', '1분 30초', '2분'."""
    total = max(1, math.ceil(seconds))
    minutes, secs = divmod(total, 60)
    if not minutes:
        return f"{secs}초"
    return f"{minutes}분 {secs}초" if secs else f"{minutes}분"


def rate_limit_notice(retry_after_s: float) -> dict[str, Any]:
    """The `data` of the WebSocket `error` message for a rate-limit wait (auto_retry: true)."""
    return {
        "error_code": RATE_LIMIT_CODE,
        "message": RATE_LIMIT_MESSAGE,
        "retry_after": korean_duration(retry_after_s),
        "auto_retry": True,
    }
