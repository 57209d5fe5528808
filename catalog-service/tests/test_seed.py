"""The checked-in catalog content: its schema and counts, and an idempotent loader."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, select

from infou_catalog.main import SPEC
from infou_catalog.models import (
    CATEGORIES,
    LEVEL_CODES,
    CuratedSubTopic,
    Level,
    MainTopic,
    outbox,
)
from infou_catalog.seed import SEED_DIR, apply_seed, load_seed
from infou_catalog.settings import CatalogSettings
from infou_libs.db import create_engine, session_factory, unit_of_work
from infou_libs.runtime import migrate
from infou_protos.events.v1 import events_pb2


def test_seed_files_have_the_promised_content() -> None:
    seed = load_seed()  # validates every field (pydantic models in seed.py)

    assert [lv.code for lv in sorted(seed.levels, key=lambda lv: lv.order)] == list(LEVEL_CODES)
    assert len(seed.main_topics) >= 25
    categories = Counter(t.category for t in seed.main_topics)
    assert len(categories) >= 6
    assert set(categories) <= set(CATEGORIES)
    for topic in seed.main_topics:
        assert len(topic.sub_topics) >= 6, topic.slug
        low, high = topic.difficulty_range
        suited = set(LEVEL_CODES[LEVEL_CODES.index(low) : LEVEL_CODES.index(high) + 1])
        for sub in topic.sub_topics:
            assert sub.name.strip()
            assert sub.description.strip()
            assert sub.learning_outcomes
            assert all(o.strip() for o in sub.learning_outcomes)
            assert isinstance(sub.prerequisites, list)
            assert sub.levels
            # A sub-topic only suits levels the topic itself covers.
            assert set(sub.levels) <= suited, (topic.slug, sub.slug)
        # Every level the topic claims is served by at least one sub-topic.
        assert suited == {lv for s in topic.sub_topics for lv in s.levels}, topic.slug


def test_seed_content_is_korean() -> None:
    seed = load_seed()
    texts = [t.name + t.description for t in seed.main_topics]
    texts += [s.description for t in seed.main_topics for s in t.sub_topics]
    hangul = [any("\uac00" <= ch <= "\ud7a3" for ch in text) for text in texts]
    assert all(hangul)


def test_malformed_seed_file_names_the_field(tmp_path: Path) -> None:
    shutil.copy(SEED_DIR / "levels.yaml", tmp_path / "levels.yaml")
    data = yaml.safe_load((SEED_DIR / "main_topics.yaml").read_text(encoding="utf-8"))
    data["main_topics"][0]["category"] = "astrology"
    (tmp_path / "main_topics.yaml").write_text(yaml.safe_dump(data, allow_unicode=True))
    with pytest.raises(ValueError, match=r"(?s)category.*astrology"):
        load_seed(tmp_path)


async def _counts(sessions) -> tuple[int, int, int, int]:  # type: ignore[no-untyped-def]
    async with sessions() as s:
        return (
            await s.scalar(select(func.count()).select_from(Level)),
            await s.scalar(select(func.count()).select_from(MainTopic)),
            await s.scalar(select(func.count()).select_from(CuratedSubTopic)),
            await s.scalar(select(func.count()).select_from(outbox)),
        )


async def test_seed_is_idempotent_and_follows_file_changes(
    fresh_database_url: str, tmp_path: Path
) -> None:
    settings = CatalogSettings(environment="test", database_url=fresh_database_url)
    await migrate(SPEC, settings)
    engine = create_engine(fresh_database_url, SPEC.schema, pool_size=2)
    sessions = session_factory(engine)
    seed = load_seed()
    n_topics = len(seed.main_topics)
    n_subs = sum(len(t.sub_topics) for t in seed.main_topics)
    try:
        async with unit_of_work(sessions) as s:
            first = await apply_seed(s, seed)
        assert first == {
            "levels_changed": 5,
            "topics_changed": n_topics,
            "sub_topics_changed": n_subs,
        }
        assert await _counts(sessions) == (5, n_topics, n_subs, 1)

        # Statistics are the service's, never the seed's: a re-run keeps them.
        async with unit_of_work(sessions) as s:
            topic = await s.scalar(select(MainTopic).where(MainTopic.slug == "ai-ml"))
            assert topic is not None
            topic.total_learners = 42

        async with unit_of_work(sessions) as s:
            again = await apply_seed(s, load_seed())
        assert again == {"levels_changed": 0, "topics_changed": 0, "sub_topics_changed": 0}
        assert await _counts(sessions) == (5, n_topics, n_subs, 1)  # no duplicate, no event

        # A changed file updates the row in place and announces that topic.
        shutil.copy(SEED_DIR / "levels.yaml", tmp_path / "levels.yaml")
        data = yaml.safe_load((SEED_DIR / "main_topics.yaml").read_text(encoding="utf-8"))
        ai = next(t for t in data["main_topics"] if t["slug"] == "ai-ml")
        ai["sub_topics"][0]["name"] = "AI 개념 지도 (개정)"
        (tmp_path / "main_topics.yaml").write_text(
            yaml.safe_dump(data, allow_unicode=True), encoding="utf-8"
        )
        async with unit_of_work(sessions) as s:
            changed = await apply_seed(s, load_seed(tmp_path))
        assert changed == {"levels_changed": 0, "topics_changed": 0, "sub_topics_changed": 1}
        assert await _counts(sessions) == (5, n_topics, n_subs, 2)
        async with sessions() as s:
            topic = await s.scalar(select(MainTopic).where(MainTopic.slug == "ai-ml"))
            sub = await s.scalar(
                select(CuratedSubTopic).where(CuratedSubTopic.slug == ai["sub_topics"][0]["slug"])
            )
            payload = await s.scalar(select(outbox.c.payload).order_by(outbox.c.id.desc()))
        assert topic is not None
        assert sub is not None
        assert topic.total_learners == 42
        assert sub.name == "AI 개념 지도 (개정)"
        assert payload is not None
        event = events_pb2.CatalogChanged.FromString(payload)
        assert list(event.main_topic_ids) == [topic.id]
        assert list(event.main_topic_slugs) == ["ai-ml"]
        assert event.reason == "seed"
        assert not event.levels_changed
    finally:
        await engine.dispose()
