"""Generated content passes moderation before it is used: an answer the moderation flags is
dropped from the content cache and generated once more (fresh, not from the cache); a second
flagged answer fails the task with code CONTENT_FLAGGED, like a quality failure. Neither answer
is served or stays cached. The jobs call `generate_moderated` where they called the engine.

A cache hit is not moderated again: every generated answer comes through here, so the cache
holds only answers that passed (and a hit stays instant, with no request at all).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from infou_generation.content.moderation import CONTENT_FLAGGED, ContentModeration
from infou_generation.engine import Generated, GenerationEngine, _strings
from infou_generation.llm.types import TaskKind
from infou_libs.logging import get_logger

log = get_logger(__name__)


class FlaggedOutputError(Exception):
    """Both answers for a task failed moderation (code CONTENT_FLAGGED): not worth retrying."""

    code = CONTENT_FLAGGED

    def __init__(self, task: str, categories: list[str]) -> None:
        super().__init__(f"{task}: both answers failed moderation ({', '.join(categories)})")
        self.task = task
        self.categories = categories


def output_texts(task: str, data: dict[str, Any]) -> dict[str, str]:
    """The text of an answer to moderate, as one field named after the task."""
    return {task: "\n".join(_strings(data))}


async def generate_moderated(
    engine: GenerationEngine,
    moderation: ContentModeration,
    task: TaskKind,
    context: dict[str, Any],
    **options: Any,
) -> Generated:
    """`engine.generate(task, context, **options)`, moderated (see the module doc)."""
    generated = await engine.generate(task, context, **options)
    if generated.cache_hit:
        return generated
    verdict = await moderation.check(output_texts(task, generated.data), stage="output")
    if not verdict.flagged:
        return generated
    await engine.forget(task, context)
    log.warning(
        "generation_output_flagged",
        task=task,
        regenerating=True,
        session_id=options.get("session_id"),
        generation_id=options.get("generation_id"),
    )
    again = await engine.generate(task, context, **(options | {"use_cache": False}))
    verdict = await moderation.check(output_texts(task, again.data), stage="output")
    if verdict.flagged:
        await engine.forget(task, context)
        categories = sorted({c for finding in verdict.findings for c in finding.categories})
        log.warning(
            "generation_output_flagged",
            task=task,
            regenerating=False,
            session_id=options.get("session_id"),
            generation_id=options.get("generation_id"),
        )
        raise FlaggedOutputError(task, categories)
    # What the task cost is both answers: the flagged one was paid for too.
    return dataclasses.replace(
        again,
        input_tokens=generated.input_tokens + again.input_tokens,
        output_tokens=generated.output_tokens + again.output_tokens,
        cost_usd=generated.cost_usd + again.cost_usd,
        attempts=generated.attempts + again.attempts,
    )
