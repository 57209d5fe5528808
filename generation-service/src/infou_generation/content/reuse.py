"""What makes generated content reusable, and by whom: the content cache key.

PRD §5.3 reuses content on topic + level. An article's key is its sub-topic, level, article
slot (its outline: position, title, summary, key concepts, as the curriculum planned them),
prompt version and model family, plus the choices that select among its cached variants
(length, examples, practice problems). A curriculum's key is its sub-topics, level, articles per
sub-topic and those same choices. Whatever does not change the text is not in the key:
`learning_pace` only spreads the articles over the weeks (session-service's estimate), so it is
dropped from the prompt and the key, and a session that differs only in pace is served from the
cache.

Learner text (interests, goals, preferred style, time availability) does change the text, and it
is personal data: content written with it is never a shared entry. Its key holds a keyed hash
of that text (`Keyring.blind_index`, HMAC-SHA256 under the data key), so the entry is served
only to a request carrying the very same text (the same learner asking again), and the row is
marked `personal` (it expires with personal data, see retention.py). Content written without
learner text is shared by every learner who chose the same topic, level and variant.

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

from infou_generation.content.prompts import PROMPT_VERSION
from infou_libs.crypto import keyring

# Personalisation keys that never change the text: dropped before the prompt is rendered.
IGNORED: Final = ("learning_pace",)
# Personalisation keys holding what the learner wrote: in the key only as a keyed hash.
LEARNER_TEXT: Final = ("interests", "learning_goals", "preferred_style", "time_availability")
_DATED = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8}|latest)$")


@dataclass(frozen=True)
class ContentKey:
    """The content cache key of one request; `personal`: written with learner text."""

    value: str
    personal: bool
    model_family: str


def without_ignored(context: dict[str, Any]) -> dict[str, Any]:
    """The context without the personalisation that does not change the text (a copy)."""
    personalization = context.get("personalization")
    if not isinstance(personalization, dict) or not any(k in personalization for k in IGNORED):
        return context
    trimmed = copy.copy(context)
    trimmed["personalization"] = {k: v for k, v in personalization.items() if k not in IGNORED}
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
