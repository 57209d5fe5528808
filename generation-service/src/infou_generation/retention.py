"""Personal data expiry in generation-service: learner input behind sub-topics is erased, and
content written with learner text (content cache rows marked `personal`, and every personal
adaptation of shared content) is deleted.

The sub-topics and their counters stay (statistics); only what the learner wrote goes.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncSession

from infou_generation.models import (
    ContentAdaptation,
    ContentCache,
    GeneratedSubTopic,
    SubTopicGenerationRequest,
)
from infou_libs.retention import rows_affected


async def sweep(
    db: AsyncSession,
    now: dt.datetime,  # noqa: ARG001 — the sweep signature libs' retention calls; unused here
    cutoff: dt.datetime,
) -> dict[str, int]:
    requests = await rows_affected(
        db,
        update(SubTopicGenerationRequest)
        .where(
            SubTopicGenerationRequest.created_at < cutoff,
            SubTopicGenerationRequest.personalization_input.is_not(None),
        )
        .values(personalization_input=None),
    )
    subtopics = await rows_affected(
        db,
        update(GeneratedSubTopic)
        .where(
            GeneratedSubTopic.created_at < cutoff,
            GeneratedSubTopic.personalization_input.is_not(None),
        )
        .values(personalization_input=None),
    )
    personal_content = await rows_affected(
        db,
        delete(ContentCache).where(ContentCache.created_at < cutoff, ContentCache.personal),
    )
    adaptations = await rows_affected(
        db, delete(ContentAdaptation).where(ContentAdaptation.created_at < cutoff)
    )
    return {
        "subtopic_generation_requests.personalization_erased": requests,
        "generated_sub_topics.personalization_erased": subtopics,
        "content_cache.personal_deleted": personal_content,
        "content_adaptations.deleted": adaptations,
    }
