"""Loads the checked-in catalog content idempotently: re-running never duplicates rows."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, field_validator, model_validator
from sqlalchemy.ext.asyncio import AsyncSession

from infou_catalog import repository
from infou_catalog.events import announce_change
from infou_catalog.models import CATEGORIES, LEVEL_CODES, CuratedSubTopic, Level, MainTopic
from infou_libs.levels import LevelCode
from infou_libs.logging import get_logger

log = get_logger(__name__)

SEED_DIR = Path(__file__).parent / "seed"
SLUG_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"


class LevelSeed(BaseModel):
    code: LevelCode
    name: str = Field(min_length=1, max_length=50)
    description: str = Field(min_length=1)
    target_audience: str = Field(min_length=1)
    characteristics: list[str] = Field(min_length=1)
    estimated_hours_per_week: int = Field(ge=1, le=40)
    order: int = Field(ge=1, le=5)


class SubTopicSeed(BaseModel):
    slug: str = Field(pattern=SLUG_PATTERN, max_length=100)
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(min_length=1)
    learning_outcomes: list[str] = Field(min_length=1)
    prerequisites: list[str] = Field(default_factory=list)
    levels: list[str] = Field(min_length=1)
    quality_score: float = Field(ge=0, le=1)

    @field_validator("levels")
    @classmethod
    def _known_levels(cls, levels: list[str]) -> list[str]:
        unknown = set(levels) - set(LEVEL_CODES)
        if unknown:
            raise ValueError(f"unknown level codes {sorted(unknown)}")
        return levels


class MainTopicSeed(BaseModel):
    slug: str = Field(pattern=SLUG_PATTERN, max_length=50)
    name: str = Field(min_length=1, max_length=100)
    description: str = Field(min_length=1)
    category: str
    estimated_learning_time: str = Field(min_length=1, max_length=30)
    difficulty_range: list[str] = Field(min_length=2, max_length=2)
    sub_topics: list[SubTopicSeed] = Field(min_length=1)

    @field_validator("category")
    @classmethod
    def _known_category(cls, category: str) -> str:
        if category not in CATEGORIES:
            raise ValueError(f"unknown category {category!r}; one of {list(CATEGORIES)}")
        return category

    @model_validator(mode="after")
    def _ordered_range(self) -> MainTopicSeed:
        low, high = self.difficulty_range
        if low not in LEVEL_CODES or high not in LEVEL_CODES:
            raise ValueError(f"difficulty_range {self.difficulty_range} has unknown level codes")
        if LEVEL_CODES.index(low) > LEVEL_CODES.index(high):
            raise ValueError(f"difficulty_range {self.difficulty_range} is not ordered")
        return self


class CatalogSeed(BaseModel):
    levels: list[LevelSeed]
    main_topics: list[MainTopicSeed]

    @model_validator(mode="after")
    def _unique(self) -> CatalogSeed:
        for what, keys in (
            ("level code", [str(lv.code) for lv in self.levels]),
            ("level order", [str(lv.order) for lv in self.levels]),
            ("main topic slug", [t.slug for t in self.main_topics]),
            ("sub-topic slug", [s.slug for t in self.main_topics for s in t.sub_topics]),
        ):
            dupes = sorted({k for k in keys if keys.count(k) > 1})
            if dupes:
                raise ValueError(f"duplicate {what}: {dupes}")
        return self


def load_seed(seed_dir: Path = SEED_DIR) -> CatalogSeed:
    """Reads and validates the data files; a malformed file fails loudly, naming the field."""
    levels = yaml.safe_load((seed_dir / "levels.yaml").read_text(encoding="utf-8"))["levels"]
    topics_file = seed_dir / "main_topics.yaml"
    topics: list[Any] = []
    if topics_file.exists():
        topics = yaml.safe_load(topics_file.read_text(encoding="utf-8"))["main_topics"]
    return CatalogSeed(levels=levels, main_topics=topics)


def _assign(row: Any, values: dict[str, Any]) -> bool:
    changed = False
    for key, value in values.items():
        current = getattr(row, key)
        if isinstance(current, Decimal):
            current = float(current)
        if current != value:
            setattr(row, key, value)
            changed = True
    return changed


async def apply_seed(session: AsyncSession, seed: CatalogSeed) -> dict[str, int]:
    """Upserts levels, topics and sub-topics; announces what changed through the outbox.

    Rows are matched by code or slug, so re-running never duplicates and a changed file updates
    rows in place. Statistics columns are never touched. Rows no longer in the files stay
    (sessions may refer to them).
    """
    await repository.lock_seed(session)
    counts = {"levels_changed": 0, "topics_changed": 0, "sub_topics_changed": 0}
    existing_levels = await repository.levels_by_code(session)
    for lv in seed.levels:
        row = existing_levels.get(lv.code) or Level(code=lv.code)
        values = lv.model_dump(exclude={"code", "order"}) | {"order_num": lv.order}
        if _assign(row, values) or lv.code not in existing_levels:
            session.add(row)
            counts["levels_changed"] += 1
    await session.flush()

    changed_topics: dict[int, MainTopic] = {}
    topics = await repository.topics_by_slug(session)
    topics_by_id = {topic.id: topic for topic in topics.values()}
    subs = await repository.sub_topics_by_slug(session)
    for t in seed.main_topics:
        topic = topics.get(t.slug)
        values = t.model_dump(exclude={"slug", "sub_topics"})
        if topic is None:
            topic = MainTopic(slug=t.slug, **values)
            session.add(topic)
            counts["topics_changed"] += 1
            await session.flush()
            changed_topics[topic.id] = topic
        elif _assign(topic, values):
            counts["topics_changed"] += 1
            changed_topics[topic.id] = topic
        for position, s in enumerate(t.sub_topics):
            sub = subs.get(s.slug)
            values = s.model_dump(exclude={"slug"}) | {
                "main_topic_id": topic.id,
                "position": position,
            }
            if sub is None:
                session.add(CuratedSubTopic(slug=s.slug, **values))
                counts["sub_topics_changed"] += 1
                changed_topics[topic.id] = topic
            else:
                previous_topic = topics_by_id.get(sub.main_topic_id)
                if _assign(sub, values):
                    counts["sub_topics_changed"] += 1
                    changed_topics[topic.id] = topic
                    if previous_topic is not None:  # moved: its old topic changed too
                        changed_topics[previous_topic.id] = previous_topic
    await session.flush()

    if changed_topics or counts["levels_changed"]:
        await announce_change(
            session,
            changed_topics.values(),
            reason="seed",
            levels_changed=counts["levels_changed"] > 0,
        )
    log.info("catalog_seeded", **counts)
    return counts
