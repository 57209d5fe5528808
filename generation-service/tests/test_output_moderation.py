"""Generated output passes moderation: the real engine and OpenAI SDK against the fake server,
real Postgres for the content cache. Flagged once → regenerated; flagged twice → CONTENT_FLAGGED;
a flagged answer never stays cached."""

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import content_examples as examples
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infou_devtools.fakellm import FakeLLMControl
from infou_generation.content.moderation import ContentModeration, FlaggedOutputError
from infou_generation.engine import GenerationEngine, build_engine, output_texts
from infou_generation.jobs.session_tasks import failure_of
from infou_generation.models import SCHEMA, ContentCache
from infou_generation.settings import GenerationSettings
from infou_libs.messaging import PermanentError

PRICES = {"openai": {"input_usd_per_token": "0.000002", "output_usd_per_token": "0.000008"}}


@pytest.fixture
async def made(
    llm_settings: Callable[..., GenerationSettings],
    generation_sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[Callable[..., GenerationEngine]]:
    closers: list[Any] = []

    def make(**overrides: Any) -> GenerationEngine:
        settings = llm_settings(
            llm_routes={"article": ["openai"]}, llm_providers=PRICES, **overrides
        )
        engine = build_engine(settings, generation_sessions)
        closers.append(engine.aclose)
        return engine

    yield make
    for close in closers:
        await close()


def marked_article() -> tuple[dict[str, Any], str]:
    """An article context of its own (the cache is shared by the run) and a term its answer
    holds (a key concept is written into the article)."""
    mark = f"표식{uuid.uuid4().hex[:10]}"
    return examples.article_context("transformers", "intermediate", key_concepts=(mark,)), mark


def cache_key(engine: GenerationEngine, context: dict[str, Any]) -> str:
    return engine.content_key_of("article", context).value


async def cached(
    sessions: async_sessionmaker[AsyncSession], engine: GenerationEngine, context: dict[str, Any]
) -> ContentCache | None:
    key = cache_key(engine, context)
    async with sessions() as session:
        row: ContentCache | None = await session.scalar(
            select(ContentCache).where(ContentCache.key == key)
        )
        return row


def verdicts(stage: str, source: str, result: str) -> float:
    labels = {"stage": stage, "source": source, "result": result}
    return REGISTRY.get_sample_value("infou_moderation_verdicts_total", labels) or 0.0


async def test_an_answer_flagged_once_is_regenerated_and_the_clean_one_is_served(
    made: Callable[..., GenerationEngine],
    fake_llm: FakeLLMControl,
    generation_sessions: async_sessionmaker[AsyncSession],
) -> None:
    engine = made()
    context, mark = marked_article()
    await fake_llm.flag_for_moderation(mark, times=1)
    flagged_before = verdicts("output", "openai", "flagged")
    generated = await engine.generate("article", context, session_id="sess_mod1")
    assert mark in output_texts("article", generated.data)["article"]
    assert generated.attempts == 2
    assert generated.cache_hit is False
    stats = await fake_llm.stats()
    assert stats["requests"] == {"openai": 2, "moderation": 2}
    assert verdicts("output", "openai", "flagged") == flagged_before + 1
    # Both answers are paid for: the cost adds up the two calls.
    assert generated.output_tokens > 0
    row = await cached(generation_sessions, engine, context)
    assert row is not None
    assert row.data == generated.data

    # The clean answer is what the cache now serves.
    again = await engine.generate("article", context)
    assert again.cache_hit is True
    assert again.data == generated.data


async def test_an_answer_flagged_twice_fails_with_content_flagged_and_is_not_cached(
    made: Callable[..., GenerationEngine],
    fake_llm: FakeLLMControl,
    generation_sessions: async_sessionmaker[AsyncSession],
) -> None:
    engine = made()
    context, mark = marked_article()
    await fake_llm.flag_for_moderation(mark)
    with pytest.raises(FlaggedOutputError) as caught:
        await engine.generate("article", context, session_id="sess_mod2")
    assert caught.value.code == "CONTENT_FLAGGED"
    assert caught.value.categories == ["violence"]
    stats = await fake_llm.stats()
    assert stats["requests"] == {"openai": 2, "moderation": 2}
    assert await cached(generation_sessions, engine, context) is None
    # What the client sees when the job gives up (the job wraps it as permanent).
    permanent = PermanentError(str(caught.value))
    permanent.__cause__ = caught.value
    code, message = failure_of(permanent, "article")
    assert code == "CONTENT_FLAGGED"
    assert message.startswith("[CONTENT_FLAGGED]")


@pytest.fixture
async def cache_writes(
    generation_sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[Callable[[str], Any]]:
    """Every row written to the content cache while the test runs (a trigger keeps a copy of
    each insert and update: a row written then deleted still shows), as a count per key."""
    statements = [
        f"CREATE TABLE {SCHEMA}.test_cache_writes (key text NOT NULL, op text NOT NULL)",
        f"""CREATE FUNCTION {SCHEMA}.test_cache_write() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO {SCHEMA}.test_cache_writes VALUES (NEW.key, TG_OP);
            RETURN NEW;
        END $$""",
        f"""CREATE TRIGGER test_cache_write AFTER INSERT OR UPDATE OF data
        ON {SCHEMA}.content_cache FOR EACH ROW EXECUTE FUNCTION {SCHEMA}.test_cache_write()""",
    ]
    async with generation_sessions.begin() as session:
        for statement in statements:
            await session.execute(text(statement))

    async def count(key: str) -> int:
        async with generation_sessions() as session:
            written = await session.scalar(
                text(f"SELECT count(*) FROM {SCHEMA}.test_cache_writes WHERE key = :key"),
                {"key": key},
            )
            return int(written or 0)

    yield count
    async with generation_sessions.begin() as session:
        await session.execute(text(f"DROP TRIGGER test_cache_write ON {SCHEMA}.content_cache"))
        await session.execute(text(f"DROP FUNCTION {SCHEMA}.test_cache_write()"))
        await session.execute(text(f"DROP TABLE {SCHEMA}.test_cache_writes"))


async def test_a_flagged_answer_is_never_written_to_the_content_cache(
    made: Callable[..., GenerationEngine],
    fake_llm: FakeLLMControl,
    cache_writes: Callable[[str], Any],
) -> None:
    engine = made()
    # Flagged, then clean: only the clean answer is written, once.
    context, mark = marked_article()
    key = cache_key(engine, context)
    await fake_llm.flag_for_moderation(mark, times=1)
    generated = await engine.generate("article", context)
    assert generated.attempts == 2
    assert await cache_writes(key) == 1

    # Flagged twice: nothing is written at all.
    context, mark = marked_article()
    key = cache_key(engine, context)
    await fake_llm.flag_for_moderation(mark)
    with pytest.raises(FlaggedOutputError):
        await engine.generate("article", context)
    assert (await fake_llm.stats())["requests"]["moderation"] == 4
    assert await cache_writes(key) == 0


async def test_a_cache_hit_is_served_without_asking_moderation_again(
    made: Callable[..., GenerationEngine],
    fake_llm: FakeLLMControl,
) -> None:
    engine = made()
    context, mark = marked_article()
    first = await engine.generate("article", context)
    assert (await fake_llm.stats())["requests"] == {"openai": 1, "moderation": 1}
    # It passed when it was written; the hit is instant, with no request at all.
    await fake_llm.flag_for_moderation(mark)
    again = await engine.generate("article", context)
    assert again.cache_hit is True
    assert again.data == first.data
    assert (await fake_llm.stats())["requests"] == {"openai": 1, "moderation": 1}


async def test_moderation_down_falls_back_to_the_local_check_for_output(
    made: Callable[..., GenerationEngine],
    fake_llm: FakeLLMControl,
) -> None:
    engine = made(llm_extra_headers={"x-fake-moderation": "server_error"})
    context, _mark = marked_article()
    before = verdicts("output", "local_fallback", "clean")
    generated = await engine.generate("article", context)
    assert generated.attempts == 1
    assert verdicts("output", "local_fallback", "clean") == before + 1
    # The SDK asked (and retried once); the local check decided.
    assert (await fake_llm.stats())["scenarios"]["moderation_server_error"] == 2


async def test_the_local_check_flags_output_when_openai_is_not_configured() -> None:
    moderation = ContentModeration(None)
    verdict = await moderation.check(
        output_texts("article", {"sections": [{"body": "폭탄 제조 과정을 단계별로"}]}),
        stage="output",
    )
    assert verdict.source == "local"
    assert verdict.fields == ["article"]
