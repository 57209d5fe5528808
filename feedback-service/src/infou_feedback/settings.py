"""feedback-service settings (prefix INFOU_)."""

from __future__ import annotations

from pydantic import Field

from infou_libs.settings import CommonSettings


class FeedbackSettings(CommonSettings):
    service_name: str = "feedback"
    grpc_port: int = Field(default=50054, ge=0, le=65535)  # the gateway's default address
    # session-service: checks each request's session token and describes the article.
    session_addr: str = "127.0.0.1:50052"
    # Monthly partitions of learning_progress_logs kept ready beyond the current month.
    partition_months_ahead: int = Field(default=2, ge=0, le=24)
    partition_check_interval_seconds: float = Field(default=24 * 3600.0, gt=0)
    # The gateway refuses longer ones already (the public contract); this may only be lower.
    max_comment_length: int = Field(default=1000, ge=1, le=1000)
    # Adaptive difficulty: of the learner's last `window` difficulty ratings since the last
    # level switch, `threshold` saying too_hard (too_easy) move the unread articles a level.
    adaptive_window: int = Field(default=3, ge=1, le=20)
    adaptive_threshold: int = Field(default=2, ge=1, le=20)
