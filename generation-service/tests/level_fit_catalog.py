"""Level fit on what the fake LLM server writes, over every sub-topic of the catalog seed.

Not a test (slow: about a minute); the measurement behind the calibration of
`content/level_fit.py`. For each curated sub-topic it composes (the offline composer is the fake
server's writer) an article at every level and a conversion to every level, judges each at its
own level, and judges the expert article for an absolute beginner and a beginner (the fake
server's `wrong_level`). Prints how many the gate failed for a level mismatch.

    uv run --frozen python generation-service/tests/level_fit_catalog.py [SEED]
"""

from __future__ import annotations

import copy
import random
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from content_examples import PERSONALIZATION

from infou_generation.content.offline import compose
from infou_generation.content.prompts import validate_context
from infou_generation.content.quality import evaluate
from infou_generation.engine import quality_options_of
from infou_libs.levels import LEVELS

SEED_FILE = Path(__file__).parents[2] / "catalog-service/src/infou_catalog/seed/main_topics.yaml"


def _context(
    main: dict[str, Any], sub: dict[str, Any], level: str, rng: random.Random
) -> dict[str, Any]:
    return {
        "main_topic": {
            "id": 1,
            "slug": main["slug"],
            "name": main["name"],
            "description": main["description"],
            "category": main["category"],
        },
        "level": level,
        "sub_topic": {
            "ref": "curated_1",
            "name": sub["name"],
            "description": sub["description"],
            "learning_outcomes": sub["learning_outcomes"],
        },
        "outline": {
            "title": f"{sub['name']} 핵심 개념",
            "summary": f"{sub['name']}의 핵심 개념을 차례로 살펴봅니다.",
            "key_concepts": [],
            "difficulty_indicators": [],
            "order": rng.randint(1, 3),
            "total": 4,
        },
        "personalization": dict(
            copy.deepcopy(PERSONALIZATION), learning_goals=f"목표 {rng.getrandbits(32):x}"
        ),
        "options": {
            "include_examples": rng.random() < 0.6,
            "include_practice_problems": rng.random() < 0.5,
            "preferred_article_length": rng.choice(["short", "medium", "long"]),
        },
    }


def _verdict(article: dict[str, Any], task: str, context: dict[str, Any]) -> str:
    report = evaluate(article, **quality_options_of(task, context))
    if "level_mismatch" in report.warnings:
        return "level_mismatch (failed)"
    return "passed" if report.passed else "failed (other)"


def main() -> None:
    rng = random.Random(int(sys.argv[1]) if len(sys.argv) > 1 else 11)
    counts: Counter[tuple[str, str]] = Counter()
    for main_topic in yaml.safe_load(SEED_FILE.read_text(encoding="utf-8"))["main_topics"]:
        for sub in main_topic["sub_topics"]:
            base = _context(main_topic, sub, "absolute_beginner", rng)
            written = {}
            for level in LEVELS:
                context = validate_context("article", dict(base, level=level))
                written[level] = compose("article", context)
                counts["own level", _verdict(written[level], "article", context)] += 1
            for level in LEVELS:
                source = rng.choice([other for other in LEVELS if other != level])
                context = dict(
                    base,
                    level=level,
                    source_level=source,
                    source_article=copy.deepcopy(written[source]),
                )
                context = validate_context("level_conversion", context)
                converted = compose("level_conversion", context)
                counts["conversion", _verdict(converted, "level_conversion", context)] += 1
            for reader in ("absolute_beginner", "beginner"):
                context = validate_context("article", dict(base, level=reader))
                counts[f"expert for {reader}", _verdict(written["expert"], "article", context)] += 1
    for (kind, verdict), n in sorted(counts.items()):
        sys.stdout.write(f"{kind:28} {verdict:26} {n:5}\n")


if __name__ == "__main__":
    main()
