"""The offline composer of a session's curriculum."""

from __future__ import annotations

import random
from typing import Any

from infou_generation.content.concepts import sub_topic_concepts
from infou_generation.content.korean import fill
from infou_generation.content.offline.phrasing import (
    Picker,
    distinct_concepts,
    interests_of,
    phrasebook,
    target_words,
)
from infou_generation.content.quality import expects_code, read_time


def compose_curriculum(ctx: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    book = phrasebook()["curriculum"]
    picker = Picker(rng)
    level = ctx["level"]
    main = ctx["main_topic"]
    personalization = ctx["personalization"]
    options = ctx["options"]
    per_sub_topic = options["max_articles_per_subtopic"]
    length = personalization["preferred_article_length"]
    interests = interests_of(personalization)
    reading = read_time(target_words(level, length), level)
    level_short = book["level_short"][level]

    items: list[dict[str, Any]] = []
    titles: set[str] = set()
    previous_title = ""
    for sub_topic in ctx["sub_topics"]:
        concepts = distinct_concepts(sub_topic_concepts(sub_topic), [sub_topic["name"]], 12) or [
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
    picker: Picker,
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
