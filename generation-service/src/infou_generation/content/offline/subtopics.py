"""The offline composer of personalised sub-topics."""

from __future__ import annotations

import hashlib
import random
import re
from typing import Any

from infou_generation.content.concepts import sub_topic_concepts
from infou_generation.content.korean import fill
from infou_generation.content.levels import level_index, shift_level
from infou_generation.content.offline.phrasing import (
    Picker,
    distinct_concepts,
    goal_of,
    interests_of,
    pace_of,
    phrasebook,
)


def compose_subtopics(ctx: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    book = phrasebook()["subtopics"]
    picker = Picker(rng)
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
        found = distinct_concepts(sub_topic_concepts({"description": description}), [], 12)
        # Bare two-letter acronyms (AI, ML) are too broad to carry a sub-topic.
        fresh = [c for c in found if _norm(c) not in seen and not re.fullmatch(r"[A-Za-z]{1,2}", c)]
        seen.update(_norm(c) for c in fresh)
        if len(fresh) >= 2:
            groups.append((source_name, fresh))
    if not groups:
        groups = [("", [f"{main['name']} 핵심 개념", f"{main['name']} 실전 응용"])]
    start = rng.randrange(len(groups))

    interests = interests_of(personalization) or [main["name"]]
    goal, goal_short = goal_of(personalization)
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
    pace = pace_of(personalization)

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
