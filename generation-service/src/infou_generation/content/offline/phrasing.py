"""What the offline composers share: the phrasebook, the seeded picker, the learner's
interests, goal and pace made safe to show back, and the Korean joins."""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any, Final, TypeVar

import yaml

from infou_generation.content.korean import fill, is_hangul, josa
from infou_generation.content.quality import WORD_BOUNDS

T = TypeVar("T")

# Where in its (min, max) word band an article aims.
_TARGET_POSITION: Final = 0.3
_PACE_ALIASES: Final = {
    "light": "light",
    "minimal": "light",
    "casual": "light",
    "low": "light",
    "slow": "light",
    "relaxed": "light",
    "regular": "regular",
    "normal": "regular",
    "moderate": "regular",
    "intensive": "intensive",
    "intense": "intensive",
    "high": "intensive",
    "fast": "intensive",
}
_VERB_ENDING = re.compile(r"(다|요|라|해|줘|세요|시오|마|!|\?|\.)$")
NO_GOAL: Final = "지금 세운 학습 목표"
_LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z0-9+#.\-]{1,19}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f<>{}\[\]`]")


def target_words(level: str, length: str) -> int:
    """The word count an offline article aims at for this level and length."""
    low, high = WORD_BOUNDS[level][length]
    return round(low + (high - low) * _TARGET_POSITION)


@cache
def phrasebook() -> dict[str, Any]:
    text = Path(__file__).with_name("phrasebook.yaml").read_text(encoding="utf-8")
    book: dict[str, Any] = yaml.safe_load(text)
    return book


def seed(task: str, ctx: dict[str, Any]) -> int:
    payload = json.dumps([task, ctx], ensure_ascii=False, sort_keys=True)
    return int.from_bytes(hashlib.sha256(payload.encode("utf-8")).digest()[:8], "big")


class Picker:
    """Draws phrasings without repeats until a family is used up, then reshuffles."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self._decks: dict[str, list[int]] = {}

    def pick(self, key: str, options: Sequence[T]) -> T:
        if not options:
            raise ValueError(f"phrasebook family {key!r} is empty")
        deck = self._decks.get(key)
        if not deck:
            deck = list(range(len(options)))
            self.rng.shuffle(deck)
            self._decks[key] = deck
        return options[deck.pop()]

    def draw(self, key: str, options: Sequence[T]) -> T | None:
        """Like `pick`, but None once every option of the family has been used."""
        deck = self._decks.get(key)
        if deck is None:
            deck = list(range(len(options)))
            self.rng.shuffle(deck)
            self._decks[key] = deck
        return options[deck.pop()] if deck else None

    def say(self, key: str, options: Sequence[str], slots: dict[str, str]) -> str:
        return fill(self.pick(key, options), slots)


def learner_phrase(text: str, max_chars: int) -> str:
    """A learner's free text usable as a Korean noun phrase in output, or "" if it is not one.

    Learner text is data: it is shown back only when it is short, mostly Korean and does not
    read as a sentence or a command; anything else is replaced by a neutral phrase.
    """
    cleaned = " ".join(_CONTROL.sub(" ", text).split())
    if not cleaned or len(cleaned) > max_chars or _VERB_ENDING.search(cleaned):
        return ""
    letters = [ch for ch in cleaned if ch.isalpha()]
    if not letters or sum(1 for ch in letters if is_hangul(ch)) / len(letters) < 0.6:
        return ""
    return cleaned


def interests_of(personalization: dict[str, Any]) -> list[str]:
    """The learner's interests as Korean-friendly words (known English words translated)."""
    translations: dict[str, str] = phrasebook()["interests"]
    result: list[str] = []
    for raw in personalization.get("interests") or []:
        cleaned = " ".join(_CONTROL.sub(" ", str(raw)).split())
        key = cleaned.lower()
        if key in translations:
            word = translations[key]
        elif learner_phrase(cleaned, 20) or _LATIN_WORD.fullmatch(cleaned):
            word = cleaned
        else:
            continue
        if word not in result:
            result.append(word)
    return result


def goal_of(personalization: dict[str, Any]) -> tuple[str, str]:
    """(goal for sentences, short goal for names); neutral phrasing when none is usable."""
    goal = learner_phrase(str(personalization.get("learning_goals", "")), 40)
    if not goal:
        return NO_GOAL, ""
    return f"‘{goal}’", goal if len(goal) <= 20 else ""


def pace_of(personalization: dict[str, Any]) -> str:
    for key in ("time_availability", "learning_pace"):
        value = _PACE_ALIASES.get(str(personalization.get(key, "")).strip().lower())
        if value:
            return value
    return "regular"


def join_korean(items: Sequence[str]) -> str:
    """ "A", "A와 B", "A, B와 C"."""
    if len(items) <= 1:
        return "".join(items)
    return ", ".join([*items[:-2], josa(items[-2], "과") + " " + items[-1]])


def distinct_concepts(candidates: Sequence[str], avoid: Sequence[str], limit: int) -> list[str]:
    """Up to `limit` concepts none of which contains another or an `avoid` phrase."""
    chosen: list[str] = []
    blocked = [a.lower() for a in avoid if a]
    for raw in candidates:
        concept = " ".join(str(raw).split()).strip(" .,")
        low = concept.lower()
        if not concept or len(concept) > 40:
            continue
        if any(low in b or b in low for b in blocked):
            continue
        if any(low in c.lower() or c.lower() in low for c in chosen):
            continue
        chosen.append(concept)
        if len(chosen) == limit:
            break
    return chosen


def matching_outcome(concept: str, outcomes: Sequence[str], undefined: Sequence[str] = ()) -> str:
    """An outcome naming `concept` and none of the concepts not yet defined in the text."""
    low = concept.lower()
    for outcome in outcomes:
        text = outcome.lower()
        if low in text and not any(u.lower() in text for u in undefined if u != concept):
            return outcome
    return ""
