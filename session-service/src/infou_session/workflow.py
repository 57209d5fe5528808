"""The generation workflow of a session as a state machine (ARCHITECTURE.md, steps 1-6).

A session's status is derived from facts, never set by hand, so events may arrive in any order
and more than once and still end in the same status:

    initializing ──curriculum──▶ generating ──last article──▶ ready
         │                            │
         └─curriculum failed─▶ failed ◀─an article failed (its retries exhausted)
                                 │
                                 └─retry─▶ initializing | generating

Articles move generating ──▶ ready | failed, and failed ──retry──▶ generating (a retry writes
every article not ready again, under the session's next generation attempt: results.py). A
failed article leaves its session failed while the others carry on: what succeeded stays
readable and the failed ones can be retried. `ready` is final; expiry is checked on every read
instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    INITIALIZING = "initializing"
    GENERATING = "generating"
    READY = "ready"
    FAILED = "failed"


class ArticleStatus(StrEnum):
    GENERATING = "generating"
    READY = "ready"
    FAILED = "failed"


class Event(StrEnum):
    CURRICULUM_GENERATED = "curriculum_generated"
    CURRICULUM_FAILED = "curriculum_failed"
    ARTICLE_GENERATED = "article_generated"
    ARTICLE_FAILED = "article_failed"
    RETRY = "retry"


@dataclass(frozen=True)
class Facts:
    """What is known about a session's generation."""

    curriculum_ready: bool
    curriculum_failed: bool = False
    total: int = 0
    ready: int = 0
    failed: int = 0

    @property
    def generating(self) -> int:
        return max(0, self.total - self.ready - self.failed)


def derive_status(facts: Facts) -> Status:
    """The status these facts mean."""
    if not facts.curriculum_ready:
        return Status.FAILED if facts.curriculum_failed else Status.INITIALIZING
    if facts.failed:
        return Status.FAILED
    if facts.ready < facts.total:
        return Status.GENERATING
    return Status.READY


def learner_status(
    status: Status, completed_articles: int, total_articles: int, started: bool
) -> str:
    """The status a learner sees (PRD §4.3): once generation is done, ready → active → completed.

    Generation owns the stored status (initializing, generating, ready, failed); reading moves
    a ready session on: `active` from the learner's first recorded progress, `completed` when
    every article is completed. Derived at read time from the progress feedback-service
    reports, so a late generation event can never undo it and a replayed one cannot redo it.
    """
    if status is not Status.READY:
        return status.value
    if total_articles and completed_articles >= total_articles:
        return "completed"
    if started or completed_articles:
        return "active"
    return status.value


def accepts(facts: Facts, event: Event) -> bool:
    """Whether a session event changes anything; False means a duplicate or a late straggler."""
    if event is Event.CURRICULUM_GENERATED:
        return not facts.curriculum_ready
    if event is Event.CURRICULUM_FAILED:
        return not facts.curriculum_ready and not facts.curriculum_failed
    if event is Event.RETRY:
        return derive_status(facts) is Status.FAILED
    return facts.curriculum_ready  # article events need a curriculum


def article_accepts(current: ArticleStatus, event: Event) -> bool:
    """Whether an article event applies to an article in `current` status."""
    if event is Event.ARTICLE_GENERATED:
        return current is ArticleStatus.GENERATING
    if event is Event.ARTICLE_FAILED:
        return current is ArticleStatus.GENERATING
    if event is Event.RETRY:
        return current is ArticleStatus.FAILED
    return False


def article_after(current: ArticleStatus, event: Event) -> ArticleStatus:
    """The article's status after an accepted event."""
    if not article_accepts(current, event):
        return current
    return {
        Event.ARTICLE_GENERATED: ArticleStatus.READY,
        Event.ARTICLE_FAILED: ArticleStatus.FAILED,
        Event.RETRY: ArticleStatus.GENERATING,
    }[event]


@dataclass(frozen=True)
class Change:
    """A status change and what watchers are told about it."""

    before: Status
    after: Status

    @property
    def completed(self) -> bool:
        """The session just became ready: `generation_complete`."""
        return self.after is Status.READY and self.before is not Status.READY

    @property
    def failed(self) -> bool:
        """The session just failed: an `error` message."""
        return self.after is Status.FAILED and self.before is not Status.FAILED


def stage(status: Status) -> str:
    """The PRD §3.6 `status` of a generation_progress message."""
    return {
        Status.INITIALIZING: "generating_curriculum",
        Status.GENERATING: "generating_articles",
        Status.READY: "completed",
        Status.FAILED: "failed",
    }[status]
