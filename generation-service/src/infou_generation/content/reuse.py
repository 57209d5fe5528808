"""What makes generated content reusable, and by whom: the content cache key.

PRD §5.3 reuses content on topic + level. An article's key is its sub-topic, level, article
slot (its outline: position, title, summary, key concepts, as the curriculum planned them),
prompt version and model family, plus the choices that select among its cached variants
(length, examples, practice problems). A curriculum's key is its sub-topics, level, articles per
sub-topic and those same choices. Whatever does not change the text is not in the key:
`learning_pace` only spreads the articles over the weeks (session-service's estimate), so it is
dropped from the prompt and the key, and a session that differs only in pace is served from the
cache.

Learner text (interests, goals, preferred style, time availability) is personal data, and a key
holding it would be shared by nobody. So curricula, articles and level conversions are written
without it (`shared_context`: `ADAPTED_TASKS`), and are shared by every learner who chose the
same topic, level and variant; what the learner wrote goes into a short personal section written
over the shared article (content/adaptation.py, adaptation.py), cached apart under the shared
entry's key and a keyed hash of that text (`adaptation_key`). The curriculum is shared too:
with the learner's goals in it, every outline — and so every article slot — would be personal,
and no article would ever be reused; its personal touch is the articles' adaptations.

Personalised sub-topics (task `subtopics`) are the learner's text by nature: their key holds a
keyed hash of it (`Keyring.blind_index`, HMAC-SHA256 under the data key), so the entry is served
only to a request carrying the very same text, and the row is marked `personal` (it expires with
personal data, see retention.py).

The model family (provider and model, dated suffix dropped) of the first provider on the task's
route is in the key, so content written by one model (or the offline composer) is not served
once another is configured.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Final

from infou_generation.content import adaptation
from infou_generation.content.prompts import PROMPT_VERSION
from infou_libs.crypto import keyring

# Personalisation keys that never change the text: dropped before the prompt is rendered.
IGNORED: Final = ("learning_pace",)
# Personalisation keys holding what the learner wrote: in the key only as a keyed hash.
LEARNER_TEXT: Final = adaptation.LEARNER_TEXT
# Tasks written without learner text (shared), personalised by an adaptation on top.
ADAPTED_TASKS: Final = frozenset({"curriculum", "article", "level_conversion"})
_DATED = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8}|latest)$")


@dataclass(frozen=True)
class ContentKey:
    """The content cache key of one request; `personal`: written with learner text."""

    value: str
    personal: bool
    model_family: str


def shared_context(task: str, context: dict[str, Any]) -> dict[str, Any]:
    """The context the task's shared content is written from (a copy when anything goes):
    pace dropped, and for `ADAPTED_TASKS` the learner text and a source article's personal
    section too."""
    personalization = context.get("personalization")
    dropped = IGNORED + (LEARNER_TEXT if task in ADAPTED_TASKS else ())
    source = context.get("source_article")
    personal_source = isinstance(source, dict) and adaptation.FIELD in source
    if not personal_source and (
        not isinstance(personalization, dict) or not any(k in personalization for k in dropped)
    ):
        return context
    trimmed = copy.copy(context)
    if isinstance(personalization, dict):
        trimmed["personalization"] = {k: v for k, v in personalization.items() if k not in dropped}
    if personal_source:
        assert isinstance(source, dict)
        trimmed["source_article"] = adaptation.without_adaptation(source)
    return trimmed


def model_family(provider: str, model: str) -> str:
    """`provider:model` without a dated or `-latest` suffix (one family, whatever the snapshot)."""
    return f"{provider}:{_DATED.sub('', model)}"


def content_key(
    task: str, context: dict[str, Any], *, family: str, version: str = PROMPT_VERSION
) -> ContentKey:
    """The key of a validated context (see the module doc)."""
    shared = copy.deepcopy(context)
    personalization = shared.get("personalization") or {}
    learner = {k: personalization.pop(k) for k in LEARNER_TEXT if personalization.get(k)}
    for key in IGNORED:
        personalization.pop(key, None)
    personal = _canonical(learner) if learner else ""
    canonical = _canonical(
        [task, version, family, shared, keyring().blind_index(personal) if learner else None]
    )
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return ContentKey(value=digest, personal=bool(learner), model_family=family)


def _canonical(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def adaptation_key(base_key: str, learner: dict[str, Any], *, family: str) -> str:
    """The cache key of a personal adaptation: the shared entry's key, the adaptation's prompt
    version and model family, and a keyed hash of the learner text (never the text)."""
    index = keyring().blind_index(_canonical(learner))
    canonical = _canonical([adaptation.TASK, adaptation.VERSION, family, base_key, index])
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
