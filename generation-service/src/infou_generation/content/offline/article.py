"""The offline composer of articles, and of an article rewritten for another level (the same
writer, seeded with the source article's terms and title)."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from infou_generation.content.concepts import sub_topic_concepts
from infou_generation.content.korean import fill
from infou_generation.content.levels import LEVEL_NAMES, level_index
from infou_generation.content.offline.code import code_examples
from infou_generation.content.offline.phrasing import (
    NO_GOAL,
    Picker,
    distinct_concepts,
    goal_of,
    interests_of,
    join_korean,
    matching_outcome,
    pace_of,
    phrasebook,
    target_words,
)
from infou_generation.content.quality import (
    MIN_PRACTICE_PROBLEMS,
    WORD_BOUNDS,
    article_markdown,
    expects_code,
    word_count,
)

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


def compose_level_conversion(ctx: dict[str, Any], rng: random.Random) -> dict[str, Any]:
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


def compose_article(ctx: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    return _ArticleWriter(ctx, rng).write()


class _ArticleWriter:
    """Writes one article: intro, a section per concept, a walkthrough, level-specific
    closing sections and a wrap-up, then grows it to the target length of its band."""

    def __init__(self, ctx: dict[str, Any], rng: random.Random, source_level: str = "") -> None:
        self.book: dict[str, Any] = phrasebook()["article"]
        self.rng = rng
        self.picker = Picker(rng)
        self.ctx = ctx
        self.level: str = ctx["level"]
        self.outline: dict[str, Any] = ctx["outline"]
        self.options: dict[str, Any] = ctx["options"]
        self.length: str = self.options["preferred_article_length"]
        self.include_examples: bool = self.options["include_examples"]
        main, sub_topic = ctx["main_topic"], ctx["sub_topic"]
        self.outcomes = [str(o) for o in sub_topic["learning_outcomes"]]

        candidates = [*self.outline["key_concepts"], *sub_topic_concepts(sub_topic)]
        self.all_concepts = distinct_concepts(candidates, [sub_topic["name"], main["name"]], 12)
        for fallback in ("기본 원리", "적용 방법", "점검 기준"):
            if len(self.all_concepts) >= 2:
                break
            self.all_concepts = distinct_concepts(
                [*self.all_concepts, fallback], [sub_topic["name"]], 12
            )
        self.concepts = self.all_concepts[: _CONCEPTS_PER_LENGTH[self.length]]
        self.spare = self.all_concepts[len(self.concepts) :]

        interests = interests_of(ctx["personalization"])
        goal, _ = goal_of(ctx["personalization"])
        self.has_goal = goal != NO_GOAL
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
                code_examples(self.rng, level, length, main, sub_topic, self.concepts)
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
        outcome = matching_outcome(concept, self.outcomes, later)
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
            self.say("wrap_recap", book["wrap_recap"], concepts=join_korean(self.concepts))
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
        outcome = matching_outcome(concept, self.outcomes)
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
    picker: Picker,
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
    pace = pace_of(personalization)
    if pace in tips:
        chosen.append(picker.say("tip:pace", tips[pace], local))
    while len(chosen) < _TIPS_PER_LENGTH[length]:
        tip = picker.say("tip:common", tips["common"], local)
        if tip in chosen:
            break
        chosen.append(tip)
    return chosen


def _problems(
    picker: Picker,
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
