"""Every NATS subject and JetStream stream name, declared once (payloads: events/v1/events.proto).

Subjects follow `events.<context>.<fact>` (stream EVENTS, durable), `jobs.<kind>` (stream JOBS,
a work queue) and `progress.session.<id>` (core NATS, ephemeral). Producers and consumers import
these names; no service spells a subject itself.
"""

from __future__ import annotations

from typing import Final

EVENTS_STREAM: Final = "EVENTS"
JOBS_STREAM: Final = "JOBS"
EVENTS_WILDCARD: Final = "events.>"
JOBS_WILDCARD: Final = "jobs.>"

# events.* (stream EVENTS)
CATALOG_CHANGED: Final = "events.catalog.changed"
SESSION_CREATED: Final = "events.session.created"
SUBTOPICS_GENERATED: Final = "events.generation.subtopics_generated"
CURRICULUM_GENERATED: Final = "events.generation.curriculum_generated"
ARTICLE_GENERATED: Final = "events.generation.article_generated"
ARTICLE_CONVERTED: Final = "events.generation.article_converted"
TASK_FAILED: Final = "events.generation.task_failed"
FEEDBACK_SUBMITTED: Final = "events.feedback.submitted"
PROGRESS_RECORDED: Final = "events.feedback.progress_recorded"
SESSION_ANALYTICS_UPDATED: Final = "events.feedback.session_analytics_updated"
DIFFICULTY_ADJUSTED: Final = "events.feedback.difficulty_adjusted"

# jobs.* (stream JOBS): `jobs.<kind>`
SUBTOPICS_JOB_KIND: Final = "subtopics.generate"
CURRICULUM_JOB_KIND: Final = "curriculum.generate"
ARTICLE_JOB_KIND: Final = "article.generate"
CONVERT_JOB_KIND: Final = "article.convert"


def job_subject(kind: str) -> str:
    """The work-queue subject of a job kind (`jobs.<kind>`)."""
    return f"jobs.{kind}"


SUBTOPICS_JOB: Final = job_subject(SUBTOPICS_JOB_KIND)
CURRICULUM_JOB: Final = job_subject(CURRICULUM_JOB_KIND)
ARTICLE_JOB: Final = job_subject(ARTICLE_JOB_KIND)
CONVERT_JOB: Final = job_subject(CONVERT_JOB_KIND)

# progress.session.<id> (core NATS)
PROGRESS_PREFIX: Final = "progress.session."
PROGRESS_WILDCARD: Final = PROGRESS_PREFIX + "*"


def progress_subject(session_id: str) -> str:
    """The core NATS subject of one session's progress messages."""
    return PROGRESS_PREFIX + session_id
