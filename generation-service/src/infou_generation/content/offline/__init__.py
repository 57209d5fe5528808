"""The offline composer: schema-valid Korean content without a model or a network.

Used only when no LLM provider is configured, so the whole product works without keys.
Everything it returns is labelled `OFFLINE_MODEL`. Output is deterministic: a PRNG seeded
from a hash of the task and its context picks among several phrasings per slot
(`phrasebook.yaml`), so the same input gives the same output and different sub-topics,
outlines or learners give different texts. The writing never invents facts about a
concept: it states the concept's role in the sub-topic (from the curated description and
learning outcomes), how to study and apply it, and — per level — analogies for beginners or
trade-offs and edge cases for experts. Articles are sized to the quality gate's bands.
"""

from __future__ import annotations

import random
from typing import Any, Final

from infou_generation.content.offline.adaptation import compose_adaptation
from infou_generation.content.offline.article import compose_article, compose_level_conversion
from infou_generation.content.offline.code import code_language
from infou_generation.content.offline.curriculum import compose_curriculum
from infou_generation.content.offline.phrasing import learner_phrase, seed, target_words
from infou_generation.content.offline.subtopics import compose_subtopics
from infou_generation.content.prompts import PROMPT_VERSION, validate_context
from infou_generation.content.schemas import validate_output

__all__ = ["OFFLINE_MODEL", "code_language", "compose", "learner_phrase", "target_words"]

OFFLINE_MODEL: Final = f"offline-{PROMPT_VERSION}"


def compose(task: str, context: dict[str, Any]) -> dict[str, Any]:
    """Deterministic, schema-valid Korean output for `task` (see the module docstring)."""
    if task == "article_adaptation":
        # Its context is the adaptation's own (content/adaptation.py), not a prompt task's.
        return compose_adaptation(context)
    ctx = validate_context(task, context)
    # Reproducible text, not secrecy: a seeded PRNG is the point here.
    rng = random.Random(seed(task, ctx))  # noqa: S311
    if task == "subtopics":
        result = compose_subtopics(ctx, rng)
    elif task == "curriculum":
        result = compose_curriculum(ctx, rng)
    elif task == "article":
        result = compose_article(ctx, rng)
    else:
        result = compose_level_conversion(ctx, rng)
    validate_output(task, result)
    return result
