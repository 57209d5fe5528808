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

import hashlib
import json
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Final, TypeVar

import yaml

from infou_generation.content.concepts import sub_topic_concepts
from infou_generation.content.korean import fill, is_hangul, josa
from infou_generation.content.levels import LEVEL_NAMES, level_index, shift_level
from infou_generation.content.prompts import PROMPT_VERSION, validate_context
from infou_generation.content.quality import (
    MIN_PRACTICE_PROBLEMS,
    WORD_BOUNDS,
    article_markdown,
    expects_code,
    read_time,
    word_count,
)
from infou_generation.content.schemas import validate_output

OFFLINE_MODEL: Final = f"offline-{PROMPT_VERSION}"

T = TypeVar("T")

# Concepts per article and base sentences per concept section, by length.
_CONCEPTS_PER_LENGTH: Final = {"short": 3, "medium": 4, "long": 5}
_BASE_SENTENCES: Final = {"short": 3, "medium": 4, "long": 5}
_TIPS_PER_LENGTH: Final = {"short": 2, "medium": 3, "long": 4}
_PROBLEMS_PER_LENGTH: Final = {"short": MIN_PRACTICE_PROBLEMS, "medium": 3, "long": 3}
# Where in its (min, max) word band an article aims.
_TARGET_POSITION: Final = 0.3
# Share of follow-up sentences that call the concept "이 개념" instead of repeating its name.
_PRONOUN_SHARE: Final = 0.2

# The order in which a concept section uses its sentence families, per level. The first
# `_BASE_SENTENCES[length]` applicable ones form the section; the rest fill to length.
_MOVES: Final = {
    "absolute_beginner": (
        "define",
        "analogy",
        "why_basic",
        "study",
        "outcome",
        "analogy_follow",
        "connect_pair",
        "example_basic",
        "goal",
        "reflect",
        "recap",
    ),
    "beginner": (
        "define",
        "analogy",
        "why_basic",
        "connect_pair",
        "example_basic",
        "mistake",
        "outcome",
        "study",
        "mistake_pair",
        "goal",
        "reflect",
        "recap",
    ),
    "intermediate": (
        "define",
        "example",
        "practical",
        "connect_pair",
        "outcome",
        "why_deep",
        "mistake",
        "study",
        "mistake_pair",
        "goal",
        "reflect",
        "deep_check",
    ),
    "advanced": (
        "define",
        "internals",
        "internals_pair",
        "practical",
        "tradeoff",
        "outcome",
        "why_deep",
        "example",
        "research",
        "tradeoff_pair",
        "goal",
        "deep_check",
        "reflect",
    ),
    "expert": (
        "define",
        "internals",
        "tradeoff",
        "edge",
        "tradeoff_pair",
        "research",
        "outcome",
        "internals_pair",
        "edge_pair",
        "why_deep",
        "example",
        "deep_check",
        "goal",
    ),
}
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
_NO_GOAL: Final = "지금 세운 학습 목표"
_LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z0-9+#.\-]{1,19}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f<>{}\[\]`]")


def compose(task: str, context: dict[str, Any]) -> dict[str, Any]:
    """Deterministic, schema-valid Korean output for `task` (see the module docstring)."""
    ctx = validate_context(task, context)
    # Reproducible text, not secrecy: a seeded PRNG is the point here.
    rng = random.Random(_seed(task, ctx))  # noqa: S311
    if task == "subtopics":
        result = _compose_subtopics(ctx, rng)
    elif task == "curriculum":
        result = _compose_curriculum(ctx, rng)
    elif task == "article":
        result = _compose_article(ctx, rng)
    else:
        result = _compose_level_conversion(ctx, rng)
    validate_output(task, result)
    return result


def target_words(level: str, length: str) -> int:
    """The word count an offline article aims at for this level and length."""
    low, high = WORD_BOUNDS[level][length]
    return round(low + (high - low) * _TARGET_POSITION)


# --- shared helpers ---------------------------------------------------------------------------


@cache
def _book() -> dict[str, Any]:
    text = Path(__file__).with_name("phrasebook.yaml").read_text(encoding="utf-8")
    book: dict[str, Any] = yaml.safe_load(text)
    return book


def _seed(task: str, ctx: dict[str, Any]) -> int:
    payload = json.dumps([task, ctx], ensure_ascii=False, sort_keys=True)
    return int.from_bytes(hashlib.sha256(payload.encode("utf-8")).digest()[:8], "big")


class _Picker:
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


def _interests(personalization: dict[str, Any]) -> list[str]:
    """The learner's interests as Korean-friendly words (known English words translated)."""
    translations: dict[str, str] = _book()["interests"]
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


def _goal(personalization: dict[str, Any]) -> tuple[str, str]:
    """(goal for sentences, short goal for names); neutral phrasing when none is usable."""
    goal = learner_phrase(str(personalization.get("learning_goals", "")), 40)
    if not goal:
        return _NO_GOAL, ""
    return f"‘{goal}’", goal if len(goal) <= 20 else ""


def _pace(personalization: dict[str, Any]) -> str:
    for key in ("time_availability", "learning_pace"):
        value = _PACE_ALIASES.get(str(personalization.get(key, "")).strip().lower())
        if value:
            return value
    return "regular"


def _join_korean(items: Sequence[str]) -> str:
    """ "A", "A와 B", "A, B와 C"."""
    if len(items) <= 1:
        return "".join(items)
    return ", ".join([*items[:-2], josa(items[-2], "과") + " " + items[-1]])


def _distinct_concepts(candidates: Sequence[str], avoid: Sequence[str], limit: int) -> list[str]:
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


def _matching_outcome(concept: str, outcomes: Sequence[str], undefined: Sequence[str] = ()) -> str:
    """An outcome naming `concept` and none of the concepts not yet defined in the text."""
    low = concept.lower()
    for outcome in outcomes:
        text = outcome.lower()
        if low in text and not any(u.lower() in text for u in undefined if u != concept):
            return outcome
    return ""


# --- sub-topics ---------------------------------------------------------------------------------


def _compose_subtopics(ctx: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    book = _book()["subtopics"]
    picker = _Picker(rng)
    main = ctx["main_topic"]
    personalization = ctx["personalization"]
    options = ctx["options"]
    curated_names = {_norm(c["name"]) for c in ctx["curated_sub_topics"]}

    # Concepts grouped by the curated sub-topic (or the main topic) they come from, so that a
    # new sub-topic pairs related concepts and the batch spreads over the whole main topic.
    groups: list[tuple[str, list[str]]] = []
    seen = set(curated_names)
    sources = [(c["name"], c["description"]) for c in ctx["curated_sub_topics"]]
    for source_name, description in [*sources, ("", main["description"])]:
        found = _distinct_concepts(sub_topic_concepts({"description": description}), [], 12)
        # Bare two-letter acronyms (AI, ML) are too broad to carry a sub-topic.
        fresh = [c for c in found if _norm(c) not in seen and not re.fullmatch(r"[A-Za-z]{1,2}", c)]
        seen.update(_norm(c) for c in fresh)
        if len(fresh) >= 2:
            groups.append((source_name, fresh))
    if not groups:
        groups = [("", [f"{main['name']} 핵심 개념", f"{main['name']} 실전 응용"])]
    start = rng.randrange(len(groups))

    interests = _interests(personalization) or [main["name"]]
    goal, goal_short = _goal(personalization)
    level = personalization["current_level"] or "beginner"
    count = options["max_subtopics"]
    if options["difficulty_progression"] and count > 1:
        low_i, high_i = level_index(shift_level(level, -1)), level_index(shift_level(level, 1))
        focuses = [
            shift_level("absolute_beginner", low_i + round(i * (high_i - low_i) / (count - 1)))
            for i in range(count)
        ]
    else:
        focuses = [level] * count
    pace = _pace(personalization)

    items: list[dict[str, Any]] = []
    names: set[str] = set(curated_names)
    for i, focus in enumerate(focuses):
        angles = [
            a
            for a in book["angles"]
            if focus in a["levels"] and ("goal_short" not in a["name"] or goal_short)
        ] or book["angles"]
        source_name, concepts = groups[(start + i) % len(groups)]
        for attempt in range(len(concepts) * len(angles)):
            angle = picker.pick(f"angle:{focus}", angles)
            index = i // len(groups) + attempt
            slots = {
                "c": concepts[index % len(concepts)],
                "p": concepts[(index + 1) % len(concepts)],
                "interest": interests[(i + attempt) % len(interests)],
                "goal": goal,
                "goal_short": goal_short,
                "main": main["name"],
            }
            name = fill(angle["name"], slots)
            if _norm(name) not in names:
                break
        names.add(_norm(name))
        prerequisites: list[str] = []
        if options["include_prerequisites"]:
            if source_name and level_index(focus) >= 2:
                prerequisites.append(source_name)
            prerequisites.append(fill(picker.pick("prereq", book["prerequisite_basics"]), slots))
        times = book["learning_time"][pace]
        items.append(
            {
                "slug": _slug(main["slug"], angle["slug"], name),
                "name": name,
                "description": fill(angle["description"], slots),
                "estimated_learning_time": times[min(level_index(focus) // 2, len(times) - 1)],
                "prerequisites": prerequisites,
                "practical_projects": [fill(t, slots) for t in angle["projects"]],
                "learning_outcomes": [fill(t, slots) for t in angle["outcomes"]],
                "difficulty_focus": focus,
            }
        )
    return {"subtopics": items}


def _norm(text: str) -> str:
    return re.sub(r"\W+", "", text).lower()


def _slug(main_slug: str, angle_slug: str, name: str) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", main_slug.lower()).strip("-") or "topic"
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:6]
    return f"{base}-{angle_slug}-{digest}"


# --- curriculum -----------------------------------------------------------------------------------


def _compose_curriculum(ctx: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    book = _book()["curriculum"]
    picker = _Picker(rng)
    level = ctx["level"]
    main = ctx["main_topic"]
    personalization = ctx["personalization"]
    options = ctx["options"]
    per_sub_topic = options["max_articles_per_subtopic"]
    length = personalization["preferred_article_length"]
    interests = _interests(personalization)
    reading = read_time(target_words(level, length), level)
    level_short = book["level_short"][level]

    items: list[dict[str, Any]] = []
    titles: set[str] = set()
    previous_title = ""
    for sub_topic in ctx["sub_topics"]:
        concepts = _distinct_concepts(sub_topic_concepts(sub_topic), [sub_topic["name"]], 12) or [
            f"{sub_topic['name']}의 기본 원리"
        ]
        if len(concepts) < 2:
            concepts.append("적용과 점검")
        code = expects_code(main["category"], sub_topic)
        for k in range(per_sub_topic):
            if per_sub_topic >= 3 and k == 0:
                role, key_concepts = "overview", concepts[:3]
            elif per_sub_topic >= 3 and k == per_sub_topic - 1:
                role, key_concepts = "closing", [*concepts[-2:], *concepts[:1]]
            else:
                role = "middle"
                j = k - (1 if per_sub_topic >= 3 else 0)
                key_concepts = [concepts[(j + s) % len(concepts)] for s in range(3)]
            key_concepts = list(dict.fromkeys(key_concepts))[:3]
            slots = {
                "sub": sub_topic["name"],
                "c": key_concepts[0],
                "p": key_concepts[1] if len(key_concepts) > 1 else concepts[-1],
                "interest": interests[k % len(interests)] if interests else main["name"],
            }
            title = _unique_title(picker, book, role, level, slots, titles, variant=k)
            titles.add(title)
            summary_options = (
                book[role]["summary"] if role != "middle" else book["middle_summary"][level]
            )
            indicators = list(book["indicators"][level])
            if code and personalization["include_examples"]:
                indicators.append("코드 예제 포함")
            if options["include_practice_problems"]:
                indicators.append("연습 문제 포함")
            if role == "closing":
                indicators.append("실습 위주")
            items.append(
                {
                    "title": title,
                    "summary": picker.say(f"summary:{role}", summary_options, slots),
                    "sub_topic_ref": sub_topic["ref"],
                    "estimated_read_time": reading,
                    "key_concepts": key_concepts,
                    "difficulty_indicators": indicators,
                    "prerequisite_titles": [previous_title] if previous_title else [],
                }
            )
            previous_title = title

    first_sub = ctx["sub_topics"][0]["name"]
    title_slots = {
        "main": main["name"],
        "level_short": level_short,
        "first_sub": first_sub,
        "interest": interests[0] if interests else main["name"],
    }
    title_options = list(book["title"]) + (list(book["title_interest"]) if interests else [])
    return {"title": picker.say("curriculum_title", title_options, title_slots), "items": items}


def _unique_title(
    picker: _Picker,
    book: dict[str, Any],
    role: str,
    level: str,
    slots: dict[str, str],
    taken: set[str],
    variant: int,
) -> str:
    """A title no earlier article has; middle articles rotate through the level's patterns."""
    options: list[str] = book["middle"][level] if role == "middle" else book[role]["title"]
    start = variant % len(options) if role == "middle" else 0
    ordered = options[start:] + options[:start]
    first = ordered[0] if role == "middle" else picker.pick(f"title:{role}", options)
    for template in [first, *ordered]:
        title = fill(template, slots)
        if title not in taken:
            return title
    base = fill(first, slots)
    n = 2
    while f"{base} ({n})" in taken:
        n += 1
    return f"{base} ({n})"


# --- articles -----------------------------------------------------------------------------------


@dataclass
class _Section:
    heading: str
    sentences: list[str] = field(default_factory=list)
    pending: list[Callable[[], str | None]] = field(default_factory=list)
    layout: str = "paragraphs"  # or "walkthrough": lead, numbered steps, closing line
    steps: list[str] = field(default_factory=list)

    def body(self) -> str:
        if self.layout == "walkthrough":
            lead, *rest = self.sentences
            numbered = "\n".join(f"{i}. {step}" for i, step in enumerate(self.steps, start=1))
            return "\n\n".join(part for part in (lead, numbered, " ".join(rest)) if part)
        paragraphs = [" ".join(self.sentences[i : i + 3]) for i in range(0, len(self.sentences), 3)]
        return "\n\n".join(paragraphs)


def _compose_level_conversion(ctx: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    source = ctx["source_article"]
    sub_name = ctx["sub_topic"]["name"]
    terms = [
        str(t.get("term", "")).strip()
        for t in source.get("key_terms") or []
        if str(t.get("term", "")).strip() and str(t.get("term", "")).strip() != sub_name
    ]
    outline = dict(ctx["outline"])
    outline["key_concepts"] = terms + list(outline["key_concepts"])
    outline["title"] = str(source.get("title") or outline["title"]).strip()
    writer = _ArticleWriter({**ctx, "outline": outline}, rng, source_level=ctx["source_level"])
    return writer.write()


def _compose_article(ctx: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    return _ArticleWriter(ctx, rng).write()


class _ArticleWriter:
    """Writes one article: intro, a section per concept, a walkthrough, level-specific
    closing sections and a wrap-up, then grows it to the target length of its band."""

    def __init__(self, ctx: dict[str, Any], rng: random.Random, source_level: str = "") -> None:
        self.book: dict[str, Any] = _book()["article"]
        self.rng = rng
        self.picker = _Picker(rng)
        self.ctx = ctx
        self.level: str = ctx["level"]
        self.outline: dict[str, Any] = ctx["outline"]
        self.options: dict[str, Any] = ctx["options"]
        self.length: str = self.options["preferred_article_length"]
        self.include_examples: bool = self.options["include_examples"]
        main, sub_topic = ctx["main_topic"], ctx["sub_topic"]
        self.outcomes = [str(o) for o in sub_topic["learning_outcomes"]]

        candidates = [*self.outline["key_concepts"], *sub_topic_concepts(sub_topic)]
        self.all_concepts = _distinct_concepts(candidates, [sub_topic["name"], main["name"]], 12)
        for fallback in ("기본 원리", "적용 방법", "점검 기준"):
            if len(self.all_concepts) >= 2:
                break
            self.all_concepts = _distinct_concepts(
                [*self.all_concepts, fallback], [sub_topic["name"]], 12
            )
        self.concepts = self.all_concepts[: _CONCEPTS_PER_LENGTH[self.length]]
        self.spare = self.all_concepts[len(self.concepts) :]

        interests = _interests(ctx["personalization"])
        goal, _ = _goal(ctx["personalization"])
        self.has_goal = goal != _NO_GOAL
        self.slots = {
            "sub": sub_topic["name"],
            "main": main["name"],
            "goal": goal,
            "interest": interests[0] if interests else main["name"],
            "n": str(len(self.concepts)),
            "order": str(self.outline["order"]),
            "total": str(self.outline["total"]),
            "level_name": LEVEL_NAMES[self.level],
            "source_level_name": LEVEL_NAMES.get(source_level, ""),
            "description": _sentence(sub_topic["description"]),
        }
        self.source_level = source_level
        self.code = expects_code(main["category"], sub_topic) and self.include_examples

    def say(self, key: str, options: Sequence[str], **extra: str) -> str:
        return self.picker.say(key, options, {**self.slots, **extra})

    def write(self) -> dict[str, Any]:
        book, level, length = self.book, self.level, self.length
        intro = self.intro()
        concept_sections = [
            self.concept_section(c, self.concepts[i - 1] if i else "")
            for i, c in enumerate(self.concepts)
        ]
        tail = [self.walkthrough(), *self.closing_sections(), self.wrapup()]
        key_terms = [
            {
                "term": self.slots["sub"],
                "definition": "이 소주제에서는 " + self.slots["description"],
            }
        ]
        for i, concept in enumerate(self.concepts):
            neighbour = self.concepts[i - 1] if i else self.concepts[(i + 1) % len(self.concepts)]
            key_terms.append(self.key_term(concept, neighbour))
        main, sub_topic = self.ctx["main_topic"], self.ctx["sub_topic"]
        article: dict[str, Any] = {
            "title": self.outline["title"].strip() or self.slots["sub"],
            "summary": self.outline["summary"].strip()
            or fill("{sub}의 핵심 개념 {n}가지를 {level_name} 눈높이로 정리합니다.", self.slots),
            "sections": [],
            "key_terms": key_terms,
            "code_examples": (
                _code_examples(self.rng, level, length, main, sub_topic, self.concepts)
                if self.code
                else []
            ),
            "practical_tips": _tips(
                self.picker,
                book,
                level,
                length,
                self.ctx["personalization"],
                self.concepts,
                self.slots,
            ),
            "related_concepts": _related(self.spare, sub_topic, main),
            "practice_problems": (
                _problems(self.picker, book, level, length, self.concepts, self.slots)
                if self.options["include_practice_problems"]
                else []
            ),
        }
        extra: list[_Section] = []

        def assemble() -> int:
            article["sections"] = [
                {"heading": s.heading, "body": s.body()}
                for s in [intro, *concept_sections, *extra, *tail]
            ]
            return word_count(article_markdown(article))

        words = assemble()
        high = WORD_BOUNDS[level][length][1]
        goal_words = target_words(level, length)
        seen = {s for section in concept_sections for s in section.sentences}
        growable = list(concept_sections)
        # Grow to the target: first the remaining sentences of each concept section in turn,
        # then sections on further concepts of the sub-topic, then second looks at concepts.
        while words < goal_words:
            added = self.grow(growable, seen, goal_words - words, high - 20 - words)
            if added:
                words += added
                continue
            section = self.next_concept_section(article_markdown(article), seen)
            if section is None:
                section = self.revisit_section(len(extra))
                if section is None:
                    break
            else:
                key_terms.append(self.key_term(self.concepts[-1], self.concepts[-2]))
                article["related_concepts"] = _related(self.spare, sub_topic, main)
                growable.append(section)
            extra.append(section)
            words = assemble()
        # Never past the upper band: drop the last follow-up sentences of the longest sections.
        while words > high - 10:
            longest = max(concept_sections + extra, key=lambda sec: len(sec.sentences))
            if len(longest.sentences) <= 2:
                break
            words -= word_count(longest.sentences.pop())
        assemble()
        return article

    def intro(self) -> _Section:
        """Defines the sub-topic first; concepts are not named yet, so that each one is first
        used where it is defined."""
        book, order, total = self.book, self.outline["order"], self.outline["total"]
        section = _Section(self.say("heading:intro", book["heading"]["intro"]))
        section.sentences.append(self.say("intro_open", book["intro_open"]))
        if total > 1:
            position = (
                "intro_position_first"
                if order == 1
                else "intro_position_last"
                if order == total
                else "intro_position"
            )
            section.sentences.append(self.say("pos", book[position]))
        if self.source_level:
            section.sentences.append(self.say("conversion", book["conversion_note"]))
        section.sentences.append(self.say("scope", book["intro_scope"]))
        section.sentences.append(self.say("intro_goal", book["intro_goal"]))
        section.sentences.append(self.say("intro_level", book["intro_level"][self.level]))
        if self.length == "long":
            section.sentences.append(self.say("intro_long", book["intro_long"]))
        return section

    def concept_section(self, concept: str, previous: str) -> _Section:
        """The concept defined in its first sentence, then the level's sentence families."""
        book, level = self.book, self.level
        local = {**self.slots, "c": concept, "p": previous}
        later = self.all_concepts[self.all_concepts.index(concept) + 1 :]
        outcome = _matching_outcome(concept, self.outcomes, later)
        if outcome:
            local["outcome"] = f"‘{outcome}’"
        section = _Section(
            self.picker.say("heading:concept", book["heading"]["concept"][level], local)
        )
        for move in _MOVES[level]:
            if (
                (move.endswith("_pair") and not previous)
                or (move == "outcome" and not outcome)
                or (move.startswith("example") and not self.include_examples)
                or (move == "goal" and not self.has_goal)
            ):
                continue

            def write(move: str = move) -> str | None:
                if move == "define":
                    return self.picker.say(f"define:{level}", book["define"][level], local)
                # Once defined, a concept is sometimes called "이 개념", as a writer would.
                ref = "이 개념" if self.rng.random() < _PRONOUN_SHARE else concept
                template = self.picker.draw(f"{move}:{level}", book[move])
                return None if template is None else fill(template, {**local, "c": ref})

            if len(section.sentences) < _BASE_SENTENCES[self.length]:
                sentence = write()
                if sentence is not None:
                    section.sentences.append(sentence)
            else:
                section.pending.append(write)
        return section

    def grow(self, sections: list[_Section], seen: set[str], missing: int, room: int) -> int:
        """Add one pending sentence to each section in turn; the words added (0 if none)."""
        added = 0
        for section in sections:
            while section.pending and added < missing:
                sentence = section.pending.pop(0)()
                if sentence is None or sentence in seen or added + word_count(sentence) > room:
                    continue
                seen.add(sentence)
                section.sentences.append(sentence)
                added += word_count(sentence)
                break
        return added

    def next_concept_section(self, text: str, seen: set[str]) -> _Section | None:
        """A section on a further concept not mentioned yet (so it is defined where first
        used), if there is enough left to say about one."""
        while self.spare and self.spare[0].lower() in text.lower():
            self.spare.pop(0)
        if not self.spare:
            return None
        concept = self.spare.pop(0)
        section = self.concept_section(concept, self.concepts[-1])
        section.sentences = [s for s in section.sentences if s not in seen]
        if len(section.sentences) < 3:
            return None
        self.concepts.append(concept)
        seen.update(section.sentences)
        return section

    def revisit_section(self, index: int) -> _Section | None:
        """A second look at a concept already defined, once nothing new is left."""
        concept = self.concepts[index % len(self.concepts)]
        section = _Section(self.say("heading:deeper", self.book["heading"]["deeper"], c=concept))
        for _ in range(4):
            template = self.picker.draw("deeper", self.book["deeper"])
            if template is not None:
                section.sentences.append(fill(template, {**self.slots, "c": concept}))
        return section if len(section.sentences) >= 3 else None

    def walkthrough(self) -> _Section:
        book, walk = self.book, self.book["walkthrough"]
        section = _Section(
            self.say("heading:example", book["heading"]["example"][self.level]),
            layout="walkthrough",
        )
        lead = walk["lead" if self.include_examples else "lead_plain"]
        section.sentences.append(self.say("walk_lead", lead))
        family = ("steps_basic", "steps_basic", "steps_practical", "steps_deep", "steps_deep")
        steps = self.picker.pick("walk_steps", walk[family[level_index(self.level)]])
        for i, step in enumerate(steps):
            concept = self.concepts[i % len(self.concepts)]
            section.steps.append(fill(step, {**self.slots, "c": concept}))
        if self.code:
            section.sentences.append(self.say("code_note", walk["code_note"]))
        section.sentences.append(self.say("walk_close", walk["close"]))
        return section

    def closing_sections(self) -> list[_Section]:
        """Pitfalls up to intermediate; trade-offs from advanced; edge cases for experts."""
        book, level, concepts = self.book, self.level, self.concepts
        sections: list[_Section] = []
        if level_index(level) <= 2:
            pitfalls = _Section(self.say("heading:pitfalls", book["heading"]["pitfalls"]))
            for _ in range(2 if self.length == "short" else 3):
                pitfalls.sentences.append(self.say("pitfalls_general", book["pitfalls_general"]))
            sections.append(pitfalls)
        if level_index(level) >= 3:
            tradeoffs = _Section(self.say("heading:tradeoffs", book["heading"]["tradeoffs"]))
            tradeoffs.sentences.append(
                self.say(f"tradeoff:{level}", book["tradeoff"], c=concepts[0])
            )
            tradeoffs.sentences.append(
                self.say(
                    f"tradeoff_pair:{level}", book["tradeoff_pair"], c=concepts[1], p=concepts[0]
                )
            )
            tradeoffs.sentences.append(self.say("tradeoff_close", book["tradeoff_close"]))
            sections.append(tradeoffs)
        if level == "expert":
            edges = _Section(self.say("heading:edge", book["heading"]["edge_cases"]))
            last, first = concepts[-1], concepts[0]
            edges.sentences.append(self.say("edge:expert", book["edge"], c=last))
            edges.sentences.append(self.say("edge_pair:expert", book["edge_pair"], c=last, p=first))
            edges.sentences.append(self.say("research:expert", book["research"], c=first))
            edges.sentences.append(self.say("edge_close", book["edge_close"]))
            sections.append(edges)
        return sections

    def wrapup(self) -> _Section:
        book, level, order = self.book, self.level, self.outline["order"]
        section = _Section(self.say("heading:wrapup", book["heading"]["wrapup"]))
        section.sentences.append(
            self.say("wrap_recap", book["wrap_recap"], concepts=_join_korean(self.concepts))
        )
        # The sub-topic's description closes its first article only, not every one of them.
        if level_index(level) >= 2 and order == 1:
            section.sentences.append(self.say("wrap_description", book["wrap_description"]))
        section.sentences.append(self.say("wrap_level", book["wrap_level"][level]))
        if self.length == "long":
            section.sentences.append(self.say("wrap_long", book["wrap_long"]))
        if order < self.outline["total"]:
            section.sentences.append(self.say("wrap_next", book["wrap_next"]))
        else:
            section.sentences.append(self.say("wrap_last", book["wrap_last"]))
        if self.options["include_practice_problems"]:
            section.sentences.append(self.say("wrap_practice", book["wrap_practice"]))
        return section

    def key_term(self, concept: str, neighbour: str) -> dict[str, str]:
        local = {**self.slots, "c": concept, "p": neighbour}
        definition = self.picker.say(f"gloss:{self.level}", self.book["gloss"][self.level], local)
        outcome = _matching_outcome(concept, self.outcomes)
        if outcome:
            local["outcome"] = f"‘{outcome}’"
            definition += " " + self.picker.say("gloss_outcome", self.book["gloss_outcome"], local)
        return {"term": concept, "definition": definition}


def _sentence(text: str) -> str:
    text = " ".join(str(text).split())
    if text and not text.endswith((".", "!", "?")):
        text += "."
    return text


def _tips(
    picker: _Picker,
    book: dict[str, Any],
    level: str,
    length: str,
    personalization: dict[str, Any],
    concepts: Sequence[str],
    slots: dict[str, str],
) -> list[str]:
    tips = book["tips"]
    local = {**slots, "c": concepts[0]}
    chosen = [picker.say("tip:level", tips[level], local)]
    pace = _pace(personalization)
    if pace in tips:
        chosen.append(picker.say("tip:pace", tips[pace], local))
    while len(chosen) < _TIPS_PER_LENGTH[length]:
        tip = picker.say("tip:common", tips["common"], local)
        if tip in chosen:
            break
        chosen.append(tip)
    return chosen


def _problems(
    picker: _Picker,
    book: dict[str, Any],
    level: str,
    length: str,
    concepts: Sequence[str],
    slots: dict[str, str],
) -> list[dict[str, str]]:
    problems = []
    for i in range(_PROBLEMS_PER_LENGTH[length]):
        concept = concepts[i % len(concepts)]
        other = concepts[(i + 1) % len(concepts)]
        template: dict[str, str] = picker.pick(f"problem:{level}", book["problems"][level])
        local = {**slots, "c": concept, "p": other}
        problems.append(
            {"question": fill(template["question"], local), "hint": fill(template["hint"], local)}
        )
    return problems


def _related(spare: Sequence[str], sub_topic: dict[str, Any], main: dict[str, Any]) -> list[str]:
    related = list(spare[:4])
    for extra in (f"{main['name']} 기초", sub_topic["name"]):
        if len(related) >= 2:
            break
        if extra not in related:
            related.append(extra)
    return related


# --- code examples ------------------------------------------------------------------------------


def code_language(main: dict[str, Any], sub_topic: dict[str, Any]) -> str:
    """The language an example for this sub-topic is written in."""
    text = " ".join(
        [
            sub_topic.get("name", ""),
            sub_topic.get("description", ""),
            " ".join(sub_topic.get("learning_outcomes") or []),
        ]
    ).lower()
    if "sql" in text:
        return "sql"
    if "flutter" in text or "dart" in text:
        return "dart"
    if any(
        k in text
        for k in ("javascript", "자바스크립트", "react", "typescript", "html", "css", "dom ")
    ):
        return "javascript"
    if any(
        k in text
        for k in ("리눅스", "셸", "bash", "linux", " git", "git과", "docker", "kubernetes")
    ):
        return "bash"
    return "python"


def _code_examples(
    rng: random.Random,
    level: str,
    length: str,
    main: dict[str, Any],
    sub_topic: dict[str, Any],
    concepts: Sequence[str],
) -> list[dict[str, str]]:
    language = code_language(main, sub_topic)
    scores = {c: round(rng.randint(6, 19) * 0.05, 2) for c in concepts}
    explanation = _book()["article"]["code_explanation"][level][0]
    writer = _CODE_WRITERS[language]
    examples = [
        {
            "language": language,
            "code": writer(level, sub_topic["name"], scores),
            "explanation": explanation,
        }
    ]
    if length == "long" and language != "python":
        examples.append(
            {
                "language": "python",
                "code": _python_code(level, sub_topic["name"], scores),
                "explanation": explanation,
            }
        )
    return examples


def _py(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _python_code(level: str, sub_name: str, scores: dict[str, float]) -> str:
    names = list(scores)
    index = level_index(level)
    if index <= 1:
        rows = "\n".join(f'    {_py(n)}: "한 문장 설명을 적어 보세요",' for n in names)
        return (
            f"# {_comment(sub_name)} 핵심 개념 복습 노트\n"
            f"concepts = {{\n{rows}\n}}\n\n"
            "for name, note in concepts.items():\n"
            '    print(f"{name}: {note}")\n'
        )
    if index == 2:
        rows = "\n".join(f"    {_py(n)}: {s}," for n, s in scores.items())
        return (
            f"# {_comment(sub_name)}: 이해도가 낮은 개념만 골라 복습 목록 만들기\n"
            f"understanding = {{\n{rows}\n}}\n\n\n"
            "def review_list(scores: dict[str, float], threshold: float = 0.7) -> list[str]:\n"
            '    """이해도가 기준보다 낮은 개념을 낮은 순서대로 돌려줍니다."""\n'
            "    low = [name for name, score in scores.items() if score < threshold]\n"
            "    return sorted(low, key=lambda name: scores[name])\n\n\n"
            "print(review_list(understanding))\n"
        )
    requires = {n: names[max(0, i - 2) : i] for i, n in enumerate(names)}
    if index == 3:
        rows = "\n".join(
            f"    {_py(n)}: Concept({_py(n)}, {scores[n]}, requires={_py_list(requires[n])}),"
            for n in names
        )
        return (
            f"# {_comment(sub_name)}: 선행 개념을 먼저 보도록 학습 순서 정하기\n"
            "from dataclasses import dataclass, field\n\n\n"
            "@dataclass\n"
            "class Concept:\n"
            "    name: str\n"
            "    understanding: float\n"
            "    requires: list[str] = field(default_factory=list)\n\n\n"
            "def study_order(concepts: dict[str, Concept]) -> list[str]:\n"
            '    """선행 개념이 먼저 오는 순서를 돌려줍니다. 순환 의존이면 ValueError."""\n'
            "    order: list[str] = []\n"
            "    visiting: set[str] = set()\n\n"
            "    def visit(name: str) -> None:\n"
            "        if name in order:\n"
            "            return\n"
            "        if name in visiting:\n"
            '            raise ValueError(f"순환 의존: {name}")\n'
            "        visiting.add(name)\n"
            "        for required in concepts[name].requires:\n"
            "            visit(required)\n"
            "        visiting.discard(name)\n"
            "        order.append(name)\n\n"
            "    for name in concepts:\n"
            "        visit(name)\n"
            "    return order\n\n\n"
            f"concepts = {{\n{rows}\n}}\n"
            "print(study_order(concepts))\n"
        )
    rows = "\n".join(f"    {_py(n)}: {_py_set(requires[n])}," for n in names)
    return (
        f"# {_comment(sub_name)}: 개념 사이의 선후 관계를 위상 정렬로 검증하기\n"
        "from collections import deque\n\n\n"
        "def study_order(requires: dict[str, set[str]]) -> list[str]:\n"
        '    """Kahn 알고리즘으로 학습 순서를 정합니다. 순환이 있으면 막힌 개념을 알려 줍니다."""\n'
        "    indegree = {name: len(deps) for name, deps in requires.items()}\n"
        "    dependents: dict[str, list[str]] = {name: [] for name in requires}\n"
        "    for name, deps in requires.items():\n"
        "        for dep in deps:\n"
        "            dependents.setdefault(dep, []).append(name)\n"
        "            indegree.setdefault(dep, 0)\n"
        "    queue = deque(sorted(name for name, degree in indegree.items() if degree == 0))\n"
        "    order: list[str] = []\n"
        "    while queue:\n"
        "        name = queue.popleft()\n"
        "        order.append(name)\n"
        "        for nxt in dependents.get(name, []):\n"
        "            indegree[nxt] -= 1\n"
        "            if indegree[nxt] == 0:\n"
        "                queue.append(nxt)\n"
        "    if len(order) < len(indegree):\n"
        "        blocked = sorted(set(indegree) - set(order))\n"
        '        raise ValueError(f"순환 의존(엣지 케이스): {blocked}")\n'
        "    return order\n\n\n"
        f"requires = {{\n{rows}\n}}\n"
        "print(study_order(requires))\n"
    )


def _py_list(items: Sequence[str]) -> str:
    return "[" + ", ".join(_py(i) for i in items) + "]"


def _py_set(items: Sequence[str]) -> str:
    return "{" + ", ".join(_py(i) for i in items) + "}" if items else "set()"


def _comment(text: str) -> str:
    return " ".join(text.split())


def _sql_code(level: str, sub_name: str, scores: dict[str, float]) -> str:
    def lit(text: str) -> str:
        return "'" + text.replace("'", "''") + "'"

    if level_index(level) <= 1:
        rows = ",\n".join(f"    ({lit(n)}, '한 문장 설명을 적어 보세요')" for n in scores)
        return (
            f"-- {_comment(sub_name)} 핵심 개념 복습 노트\n"
            "CREATE TABLE concepts (\n"
            "    name TEXT PRIMARY KEY,\n"
            "    note TEXT NOT NULL\n"
            ");\n\n"
            f"INSERT INTO concepts (name, note) VALUES\n{rows};\n\n"
            "SELECT name, note FROM concepts ORDER BY name;\n"
        )
    rows = ",\n".join(f"    ({lit(n)}, {s})" for n, s in scores.items())
    return (
        f"-- {_comment(sub_name)}: 이해도가 낮은 개념부터 복습하기\n"
        "CREATE TABLE concepts (\n"
        "    name TEXT PRIMARY KEY,\n"
        "    understanding REAL NOT NULL CHECK (understanding BETWEEN 0 AND 1)\n"
        ");\n\n"
        f"INSERT INTO concepts (name, understanding) VALUES\n{rows};\n\n"
        "SELECT name, understanding\n"
        "FROM concepts\n"
        "WHERE understanding < 0.7\n"
        "ORDER BY understanding ASC, name;\n"
    )


def _javascript_code(level: str, sub_name: str, scores: dict[str, float]) -> str:
    if level_index(level) <= 1:
        rows = "\n".join(f"  {_py(n)}," for n in scores)
        return (
            f"// {_comment(sub_name)} 핵심 개념 복습 노트\n"
            f"const concepts = [\n{rows}\n];\n\n"
            "concepts.forEach((name) => {\n"
            "  console.log(`${name}: 한 문장 설명을 적어 보세요`);\n"
            "});\n"
        )
    rows = "\n".join(f"  {{ name: {_py(n)}, understanding: {s} }}," for n, s in scores.items())
    return (
        f"// {_comment(sub_name)}: 이해도가 낮은 개념만 골라 복습 목록 만들기\n"
        f"const concepts = [\n{rows}\n];\n\n"
        "const reviewList = (items, threshold = 0.7) =>\n"
        "  items\n"
        "    .filter((item) => item.understanding < threshold)\n"
        "    .sort((a, b) => a.understanding - b.understanding)\n"
        "    .map((item) => item.name);\n\n"
        "console.log(reviewList(concepts));\n"
    )


def _bash_code(level: str, sub_name: str, scores: dict[str, float]) -> str:
    def lit(text: str) -> str:
        return "'" + text.replace("'", "'\\''") + "'"

    names = " ".join(lit(n) for n in scores)
    if level_index(level) <= 1:
        return (
            "#!/usr/bin/env bash\n"
            f"# {_comment(sub_name)} 핵심 개념 복습 노트\n"
            f"concepts=({names})\n\n"
            'for concept in "${concepts[@]}"; do\n'
            '  echo "- ${concept}: 한 문장 설명을 적어 보세요"\n'
            "done\n"
        )
    rows = "\n".join(f"  [{lit(n)}]={round(s * 100)}" for n, s in scores.items())
    return (
        "#!/usr/bin/env bash\n"
        f"# {_comment(sub_name)}: 이해도(0-100)가 70 미만인 개념만 낮은 순서로 보기\n"
        "set -euo pipefail\n\n"
        f"declare -A understanding=(\n{rows}\n)\n\n"
        'for name in "${!understanding[@]}"; do\n'
        "  score=${understanding[$name]}\n"
        "  if (( score < 70 )); then\n"
        '    printf \'%s\\t%s\\n\' "$score" "$name"\n'
        "  fi\n"
        "done | sort -n\n"
    )


def _dart_code(level: str, sub_name: str, scores: dict[str, float]) -> str:
    def lit(text: str) -> str:
        return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("$", "\\$") + "'"

    rows = "\n".join(f"    {lit(n)}: {s}," for n, s in scores.items())
    threshold = "1.1" if level_index(level) <= 1 else "0.7"
    return (
        f"// {_comment(sub_name)} 핵심 개념 복습 노트\n"
        "void main() {\n"
        f"  final understanding = <String, double>{{\n{rows}\n  }};\n"
        f"  const threshold = {threshold};\n"
        "  understanding.forEach((name, score) {\n"
        "    if (score < threshold) {\n"
        "      print('복습할 개념: $name ($score)');\n"
        "    }\n"
        "  });\n"
        "}\n"
    )


_CODE_WRITERS: Final[dict[str, Callable[[str, str, dict[str, float]], str]]] = {
    "python": _python_code,
    "sql": _sql_code,
    "javascript": _javascript_code,
    "bash": _bash_code,
    "dart": _dart_code,
}
