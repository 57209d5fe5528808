"""What a session's WebSocket watchers are told (PRD §3.6), and how it leaves this service.

Each message is numbered from the session's `progress_sequence` inside the transaction of the
change it reports, and published on core NATS `progress.session.<id>` after that transaction
commits (ephemeral: a watcher that misses it gets the current state from the next snapshot,
which names the last sequence it reflects, so nothing that matters is lost).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client as NatsClient

from infou_libs import subjects
from infou_libs.durations import korean_duration
from infou_libs.logging import get_logger
from infou_protos.events.v1 import events_pb2
from infou_session.models import GeneratedArticle, LearningSession
from infou_session.workflow import ArticleStatus, Status, stage

log = get_logger(__name__)

GENERATION_FAILED = "GENERATION_FAILED"


@dataclass(frozen=True)
class ProgressMessage:
    type: str
    data: dict[str, Any]
    sequence: int


def stamp(
    session: LearningSession, drafts: Sequence[tuple[str, dict[str, Any]]]
) -> list[ProgressMessage]:
    """Numbers the messages of one change (call inside its transaction)."""
    messages = []
    for kind, data in drafts:
        session.progress_sequence = (session.progress_sequence or 0) + 1
        messages.append(ProgressMessage(kind, data, session.progress_sequence))
    return messages


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def estimated_remaining(
    session: LearningSession, ready: int, pending: int, now: dt.datetime | None = None
) -> str | None:
    """Remaining time from the observed pace of this session's articles; None before any."""
    if pending <= 0:
        return korean_duration(0)
    started = session.curriculum_generated_at
    if started is None or ready <= 0:
        return None
    elapsed = max(0.0, ((now or _now()) - started).total_seconds())
    return korean_duration(elapsed / ready * pending)


def current_task(session: LearningSession, articles: Sequence[GeneratedArticle]) -> str:
    status = Status(session.status)
    if status is Status.INITIALIZING:
        return "커리큘럼 설계 중..."
    pending = [a for a in articles if a.status == ArticleStatus.GENERATING]
    if pending:
        return f"{pending[0].title} 아티클 생성 중..."
    if status is Status.FAILED:
        return "생성 실패: 다시 시도할 수 있습니다"
    return "모든 아티클 생성 완료"


def progress_block(
    session: LearningSession, articles: Sequence[GeneratedArticle], now: dt.datetime | None = None
) -> dict[str, Any]:
    ready = sum(1 for a in articles if a.status == ArticleStatus.READY)
    pending = sum(1 for a in articles if a.status == ArticleStatus.GENERATING)
    return {
        "completed": ready,
        "total": len(articles),
        "failed": sum(1 for a in articles if a.status == ArticleStatus.FAILED),
        "current_task": current_task(session, articles),
        "estimated_remaining": (
            None
            if Status(session.status) is Status.INITIALIZING
            else estimated_remaining(session, ready, pending, now)
        ),
    }


def generation_progress(
    session: LearningSession, articles: Sequence[GeneratedArticle]
) -> tuple[str, dict[str, Any]]:
    return (
        "generation_progress",
        {
            "session_id": session.id,
            "status": stage(Status(session.status)),
            "progress": progress_block(session, articles),
        },
    )


def article_ready(article: GeneratedArticle) -> tuple[str, dict[str, Any]]:
    return (
        "article_ready",
        {
            "session_id": article.session_id,
            "article_id": article.id,
            "order": article.order_num,
            "title": article.title,
            "level": article.target_level,
        },
    )


def generation_time_seconds(session: LearningSession) -> int:
    return int(session.generation_duration_seconds or 0)


def generation_complete(session: LearningSession) -> tuple[str, dict[str, Any]]:
    return (
        "generation_complete",
        {
            "session_id": session.id,
            "total_articles": session.total_articles,
            "generation_time": korean_duration(generation_time_seconds(session)),
            "ready_to_start": True,
        },
    )


def error(
    session_id: str, code: str, message: str, *, auto_retry: bool = False, **extra: Any
) -> tuple[str, dict[str, Any]]:
    data: dict[str, Any] = {
        "session_id": session_id,
        "error_code": code,
        "message": message,
        "auto_retry": auto_retry,
    }
    data.update({k: v for k, v in extra.items() if v is not None})
    return ("error", data)


def conversion_complete(
    session_id: str, article_id: str, level: str, task_id: str, status: str
) -> tuple[str, dict[str, Any]]:
    return (
        "conversion_complete",
        {
            "session_id": session_id,
            "article_id": article_id,
            "target_level": level,
            "task_id": task_id,
            "status": status,
        },
    )


def snapshot(session: LearningSession, articles: Sequence[GeneratedArticle]) -> dict[str, Any]:
    """The first message a watcher gets: everything needed to draw the current state."""
    status = Status(session.status)
    return {
        "session_id": session.id,
        "status": status.value,
        "stage": stage(status),
        "curriculum_ready": session.curriculum_generated_at is not None,
        "title": session.curriculum_title,
        "progress": progress_block(session, articles),
        "articles": [
            {"id": a.id, "order": a.order_num, "title": a.title, "status": a.status}
            for a in articles
        ],
        "failure_reason": session.failure_reason,
        "ready_to_start": status is Status.READY,
        "generation_time": (
            korean_duration(generation_time_seconds(session)) if status is Status.READY else None
        ),
        "expires_at": session.expires_at.isoformat(),
    }


class ProgressPublisher:
    """Publishes committed progress on core NATS; a failure is logged, never raised."""

    def __init__(self, nc: NatsClient | None) -> None:
        self._nc = nc

    async def publish(self, session_id: str, messages: Sequence[ProgressMessage]) -> None:
        if self._nc is None or not messages:
            return
        for message in messages:
            payload = events_pb2.SessionProgress(
                session_id=session_id,
                type=message.type,
                data_json=json.dumps(message.data, ensure_ascii=False),
                sequence=message.sequence,
            )
            try:
                await self._nc.publish(
                    subjects.progress_subject(session_id), payload.SerializeToString()
                )
            except Exception as exc:
                log.warning("progress_publish_failed", session_id=session_id, error=str(exc))
