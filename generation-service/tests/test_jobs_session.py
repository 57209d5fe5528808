"""The session generation jobs: curriculum, article and level conversion, through the real
service, JetStream and the fake LLM server behind the openai provider.

Jobs go in as session-service would enqueue them (the task's context in the job); results come
out as events on EVENTS. Handlers are also called directly with a message, to see a redelivery
and a budget refusal.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import content_examples as examples
import pytest
from google.protobuf.message import Message
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infou_devtools.fakellm import FakeLLMControl
from infou_devtools.testing import running_service
from infou_generation.catalog import CatalogClient
from infou_generation.content import adaptation
from infou_generation.engine import build_engine
from infou_generation.jobs import article, conversion, curriculum
from infou_generation.jobs.runner import JobContext
from infou_generation.llm.breaker import CircuitBreaker
from infou_generation.llm.types import BudgetExceededError
from infou_generation.main import SPEC
from infou_generation.models import SCHEMA, outbox
from infou_generation.settings import GenerationSettings
from infou_libs.db import create_engine, session_factory
from infou_libs.messaging import (
    EVENT_ID_HEADER,
    EVENTS_STREAM,
    PermanentError,
    connect,
    ensure_streams,
    publish,
)
from infou_libs.runtime import Runtime
from infou_protos.events.v1 import events_pb2

RESULTS = "events.generation.>"


@pytest.fixture(scope="module")
def settings(service_settings: Callable[..., GenerationSettings]) -> GenerationSettings:
    return service_settings(
        llm_routes={
            "curriculum": ["openai"],
            "article": ["openai"],
            "level_conversion": ["openai"],
        },
        llm_providers={
            "openai": {"input_usd_per_token": "0.000002", "output_usd_per_token": "0.000008"}
        },
        # The breaker has tests of its own (test_llm_breaker, test_llm_storm); here it never
        # opens, so a failing job goes through all of its deliveries.
        llm_breaker_failures=20,
    )


@pytest.fixture(scope="module")
async def service(settings: GenerationSettings) -> AsyncIterator[int]:
    async with running_service(SPEC, settings) as port:
        yield port


@pytest.fixture(scope="module")
async def sessions(module_database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(module_database_url, SCHEMA)
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture(scope="module")
async def nc(module_nats_url: str, service: int) -> AsyncIterator[NatsClient]:  # noqa: ARG001 — requested so the service runs
    client = await connect(module_nats_url, "generation-session-jobs-tests")
    await ensure_streams(client.jetstream())
    yield client
    await client.close()


@pytest.fixture(scope="module")
def js(nc: NatsClient) -> JetStreamContext:
    return nc.jetstream()


class Results:
    """Every result event on EVENTS, decoded, by subject."""

    def __init__(self, sub: JetStreamContext.PullSubscription) -> None:
        self.sub = sub
        self.seen: list[tuple[str, Any]] = []

    async def wait(self, subject: str, match: Any, timeout: float = 30.0) -> Any:
        kinds: dict[str, type[Message]] = {
            "events.generation.curriculum_generated": events_pb2.CurriculumGenerated,
            "events.generation.article_generated": events_pb2.ArticleGenerated,
            "events.generation.article_converted": events_pb2.ArticleConverted,
            "events.generation.task_failed": events_pb2.GenerationFailed,
        }
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for seen_subject, event in self.seen:
                if seen_subject == subject and match(event):
                    return event
            if loop.time() > deadline:
                raise TimeoutError(f"no {subject} matched")
            try:
                msgs = await self.sub.fetch(20, timeout=0.5)
            except (TimeoutError, NatsTimeoutError):
                continue
            for msg in msgs:
                await msg.ack()
                if msg.subject in kinds:
                    self.seen.append((msg.subject, kinds[msg.subject].FromString(msg.data)))

    def count(self, subject: str, match: Any) -> int:
        return sum(1 for s, e in self.seen if s == subject and match(e))


@pytest.fixture(scope="module")
async def results(js: JetStreamContext) -> AsyncIterator[Results]:
    sub = await js.pull_subscribe(
        RESULTS,
        durable="test-session-results",
        stream=EVENTS_STREAM,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
    )
    yield Results(sub)
    await sub.unsubscribe()


@pytest.fixture
async def llm(fake_llm: FakeLLMControl) -> AsyncIterator[FakeLLMControl]:
    yield fake_llm
    await fake_llm.reset()


def fresh(context: dict[str, Any]) -> dict[str, Any]:
    """The context with a cache key and a goal no other test uses (the cache is shared)."""
    context["personalization"]["learning_goals"] = f"업무 자동화 {uuid.uuid4().hex[:8]}"
    return examples.unique(context)


def session_id() -> str:
    return f"sess_{uuid.uuid4().hex}"


async def test_a_curriculum_job_answers_with_the_plan_and_its_cost_then_from_the_cache(
    js: JetStreamContext, results: Results, llm: FakeLLMControl
) -> None:
    context = fresh(
        examples.curriculum_context(("transformers", "supervised"), max_articles_per_subtopic=2)
    )
    refs = {s["ref"] for s in context["sub_topics"]}
    first, second = session_id(), session_id()
    await publish(
        js,
        "jobs.curriculum.generate",
        events_pb2.GenerateCurriculumJob(session_id=first, context_json=json.dumps(context)),
    )
    plan = await results.wait(
        "events.generation.curriculum_generated", lambda e: e.session_id == first
    )
    assert plan.title
    assert plan.items
    assert {item.sub_topic_ref for item in plan.items} <= refs
    assert all(item.key_concepts for item in plan.items)
    assert plan.usage.cache_hit is False
    assert plan.usage.input_tokens > 0
    assert plan.usage.output_tokens > 0
    assert plan.usage.cost_usd > 0
    assert plan.usage.provider == "openai"
    assert plan.usage.model
    assert plan.occurred_at.seconds > 0
    requests = (await llm.stats())["total"]

    # Another session with the same selection, level and options: the cache, no tokens.
    await publish(
        js,
        "jobs.curriculum.generate",
        events_pb2.GenerateCurriculumJob(session_id=second, context_json=json.dumps(context)),
    )
    again = await results.wait(
        "events.generation.curriculum_generated", lambda e: e.session_id == second
    )
    assert again.usage.cache_hit is True
    assert again.usage.input_tokens + again.usage.output_tokens == 0
    assert again.usage.cost_usd == 0
    assert [i.title for i in again.items] == [i.title for i in plan.items]
    assert (await llm.stats())["total"] == requests


@pytest.mark.usefixtures("llm")
async def test_an_article_job_answers_with_the_written_article(
    js: JetStreamContext, results: Results
) -> None:
    context = fresh(
        examples.article_context(
            "transformers", "intermediate", key_concepts=("어텐션", "멀티헤드")
        )
    )
    sid = session_id()
    job = events_pb2.GenerateArticleJob(
        session_id=sid, article_id=f"{sid}_001", context_json=json.dumps(context)
    )
    await publish(js, "jobs.article.generate", job)
    event = await results.wait(
        "events.generation.article_generated", lambda e: e.article_id == job.article_id
    )
    written = event.article
    assert written.content.startswith("## ")
    assert written.word_count > 100
    assert written.estimated_read_time.endswith("분")
    assert 0 < written.quality_score <= 1
    report = json.loads(written.quality_report_json)
    assert report["score"] == written.quality_score
    assert report["passed"] is True
    assert report["warnings"] == list(written.quality_warnings)
    assert report["checks"]["word_count"] == written.word_count
    assert isinstance(report["level_fit"], list)
    assert written.title
    body = json.loads(written.article_json)
    assert body["sections"]
    assert list(written.key_terms) == [t["term"] for t in body["key_terms"]]
    assert written.code_examples == len(body["code_examples"])
    assert event.usage.prompt_excerpt.startswith("[infou_article")
    # The excerpt shown to learners names the task but holds none of their text.
    assert context["personalization"]["learning_goals"] not in event.usage.prompt_excerpt


@pytest.mark.usefixtures("llm")
async def test_a_conversion_job_answers_at_the_target_level(
    js: JetStreamContext, results: Results
) -> None:
    source = examples.article_context("supervised", "intermediate")
    written = await _direct_article(js, results, fresh(source))
    context = examples.level_conversion_context(
        json.loads(written.article_json), sub_topic="supervised"
    )
    context = fresh(context)
    sid = session_id()
    job = events_pb2.ConvertArticleJob(
        session_id=sid,
        article_id=f"{sid}_001",
        target_level="beginner",
        task_id=f"conv_{uuid.uuid4().hex}",
        context_json=json.dumps(context),
    )
    await publish(js, "jobs.article.convert", job)
    event = await results.wait(
        "events.generation.article_converted", lambda e: e.task_id == job.task_id
    )
    assert event.target_level == "beginner"
    assert event.article_id == job.article_id
    assert event.article.content.startswith("## ")
    assert event.usage.prompt_excerpt.startswith("[infou_level_conversion")


async def _direct_article(
    js: JetStreamContext, results: Results, context: dict[str, Any]
) -> events_pb2.WrittenArticle:
    return (await _article_event(js, results, context)).article


async def _article_event(
    js: JetStreamContext, results: Results, context: dict[str, Any]
) -> events_pb2.ArticleGenerated:
    """An article job of a session of its own, and the event it answers with."""
    sid = session_id()
    job = events_pb2.GenerateArticleJob(
        session_id=sid, article_id=f"{sid}_001", context_json=json.dumps(context)
    )
    await publish(js, "jobs.article.generate", job)
    event: events_pb2.ArticleGenerated = await results.wait(
        "events.generation.article_generated", lambda e: e.article_id == job.article_id
    )
    return event


async def test_a_job_that_exhausts_its_retries_is_reported_as_failed(
    js: JetStreamContext, results: Results, llm: FakeLLMControl
) -> None:
    await llm.arm("server_error", times=-1)
    sid = session_id()
    job = events_pb2.GenerateArticleJob(
        session_id=sid,
        article_id=f"{sid}_002",
        context_json=json.dumps(fresh(examples.article_context())),
    )
    await publish(js, "jobs.article.generate", job)
    failed = await results.wait("events.generation.task_failed", lambda e: e.session_id == sid)
    assert failed.task == "article"
    assert failed.article_id == job.article_id
    assert failed.error_code == "GENERATION_FAILED"
    assert failed.message
    assert results.count("events.generation.article_generated", lambda e: e.session_id == sid) == 0
    stats = await llm.stats()
    assert stats["scenarios"]["server_error"] == 4  # the first delivery and three retries


async def test_an_article_below_the_quality_threshold_fails_with_its_code_never_ready(
    js: JetStreamContext, results: Results, llm: FakeLLMControl
) -> None:
    await llm.arm("wrong_level", times=-1)  # expert text for an absolute beginner, every time
    sid = session_id()
    job = events_pb2.GenerateArticleJob(
        session_id=sid,
        article_id=f"{sid}_001",
        # A fixed context: its expert text always fails the gate, and failures are not cached.
        context_json=json.dumps(examples.article_context("transformers", "absolute_beginner")),
    )
    await publish(js, "jobs.article.generate", job)
    failed = await results.wait("events.generation.task_failed", lambda e: e.session_id == sid)
    assert (failed.task, failed.article_id) == ("article", job.article_id)
    assert failed.error_code == "QUALITY_BELOW_THRESHOLD"
    assert "QUALITY_BELOW_THRESHOLD" in failed.message
    assert results.count("events.generation.article_generated", lambda e: e.session_id == sid) == 0
    # The gate's verdict is final: two attempts on the route's one provider, no job retries.
    assert (await llm.stats())["scenarios"]["wrong_level"] == 2


async def test_a_context_the_prompts_refuse_fails_at_once(
    js: JetStreamContext, results: Results, llm: FakeLLMControl
) -> None:
    sid = session_id()
    bad = examples.curriculum_context()
    bad["sub_topics"] = []
    await publish(
        js,
        "jobs.curriculum.generate",
        events_pb2.GenerateCurriculumJob(session_id=sid, context_json=json.dumps(bad)),
    )
    failed = await results.wait("events.generation.task_failed", lambda e: e.session_id == sid)
    assert (failed.task, failed.error_code) == ("curriculum", "GENERATION_FAILED")
    assert (await llm.stats())["total"] == 0


# ── handlers called directly: redelivery and budget ────────────────────────────────────


@pytest.fixture
async def direct(
    settings: GenerationSettings,
    sessions: async_sessionmaker[AsyncSession],
    nc: NatsClient,
    js: JetStreamContext,
) -> AsyncIterator[Any]:
    made: list[Any] = []

    def make(**overrides: Any) -> JobContext:
        engine = build_engine(settings.model_copy(update=overrides), sessions)
        catalog = CatalogClient(settings.catalog_addr, 2)
        made.append((engine, catalog))
        return JobContext(settings, sessions, nc, js, outbox, engine, catalog)

    yield make
    for engine, catalog in made:
        await engine.aclose()
        await catalog.close()


def job_message(js: JetStreamContext, subject: str, job: Any) -> Msg:
    """A job as JetStream delivers it (its event id in the headers)."""
    return Msg(
        js._nc,
        subject=subject,
        data=job.SerializeToString(),
        headers={EVENT_ID_HEADER: uuid.uuid4().hex},
    )


async def outbox_rows(sessions: async_sessionmaker[AsyncSession], event_id: str) -> int:
    async with sessions() as session:
        count = await session.scalar(
            select(func.count()).select_from(outbox).where(outbox.c.event_id == event_id)
        )
    return int(count or 0)


@pytest.mark.usefixtures("service")
async def test_a_redelivered_article_job_publishes_its_result_once(
    direct: Any,
    js: JetStreamContext,
    sessions: async_sessionmaker[AsyncSession],
    llm: FakeLLMControl,
) -> None:
    ctx = direct()
    handler = article.consumer(ctx).handler
    sid = session_id()
    job = events_pb2.GenerateArticleJob(
        session_id=sid,
        article_id=f"{sid}_001",
        context_json=json.dumps(fresh(examples.article_context())),
    )
    msg = job_message(js, "jobs.article.generate", job)
    assert msg.headers is not None
    await handler(msg)
    calls = (await llm.stats())["total"]
    await handler(msg)  # the worker died before acking: JetStream delivers it again
    assert (await llm.stats())["total"] == calls  # nothing generated twice
    assert await outbox_rows(sessions, f"article-{msg.headers[EVENT_ID_HEADER]}") == 1


@pytest.mark.usefixtures("llm", "service")
async def test_an_exhausted_job_reports_once_and_never_after_a_success(
    direct: Any,
    js: JetStreamContext,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    ctx = direct()
    consumer = curriculum.consumer(ctx)
    sid = session_id()
    job = events_pb2.GenerateCurriculumJob(
        session_id=sid, context_json=json.dumps(fresh(examples.curriculum_context()))
    )
    msg = job_message(js, "jobs.curriculum.generate", job)
    assert msg.headers is not None
    await consumer.handler(msg)
    assert consumer.on_exhausted is not None
    await consumer.on_exhausted(msg, RuntimeError("late"))
    event_id = msg.headers[EVENT_ID_HEADER]
    assert await outbox_rows(sessions, f"curriculum-{event_id}") == 1
    assert await outbox_rows(sessions, f"failed-{event_id}") == 0


@pytest.mark.usefixtures("service")
async def test_no_budget_fails_the_conversion_with_the_budget_code(
    direct: Any,
    js: JetStreamContext,
    sessions: async_sessionmaker[AsyncSession],
    llm: FakeLLMControl,
) -> None:
    ctx = direct(daily_budget_usd=Decimal(0))
    consumer = conversion.consumer(ctx)
    source = {
        "title": "원문",
        "summary": "요약",
        "sections": [{"heading": "h", "body": "b"}],
        "key_terms": [],
    }
    context = fresh(examples.level_conversion_context(source))
    sid = session_id()
    job = events_pb2.ConvertArticleJob(
        session_id=sid,
        article_id=f"{sid}_001",
        target_level="beginner",
        task_id="conv_x",
        context_json=json.dumps(context),
    )
    msg = job_message(js, "jobs.article.convert", job)
    assert msg.headers is not None
    # A budget refusal is terminal: the job is not retried (it would only spend more).
    with pytest.raises(PermanentError) as caught:
        await consumer.handler(msg)
    assert isinstance(caught.value.__cause__, BudgetExceededError)
    assert consumer.on_exhausted is not None
    await consumer.on_exhausted(msg, caught.value)
    assert (await llm.stats())["total"] == 0
    async with sessions() as session:
        payload = await session.scalar(
            select(outbox.c.payload).where(
                outbox.c.event_id == f"failed-{msg.headers[EVENT_ID_HEADER]}"
            )
        )
    assert payload is not None
    failed = events_pb2.GenerationFailed.FromString(bytes(payload))
    assert failed.error_code == "LLM_BUDGET_EXCEEDED"
    assert (failed.task, failed.task_id, failed.target_level) == (
        "level_conversion",
        "conv_x",
        "beginner",
    )
    assert "예산" in failed.message


@pytest.mark.usefixtures("service")
async def test_waiting_out_a_rate_limit_is_announced_to_the_sessions_watchers(
    direct: Any, nc: NatsClient, js: JetStreamContext, llm: FakeLLMControl
) -> None:
    ctx = direct(llm_max_retries=1)  # a worker that waits a rate limit out
    handler = article.consumer(ctx).handler
    sid = session_id()
    notices: list[events_pb2.SessionProgress] = []

    async def on_notice(msg: Msg) -> None:
        notices.append(events_pb2.SessionProgress.FromString(msg.data))

    sub = await nc.subscribe(f"progress.session.{sid}", cb=on_notice)
    try:
        await llm.arm("rate_limit", times=1, retry_after=1)
        job = events_pb2.GenerateArticleJob(
            session_id=sid,
            article_id=f"{sid}_001",
            context_json=json.dumps(fresh(examples.article_context())),
        )
        await handler(job_message(js, "jobs.article.generate", job))
        await nc.flush()
    finally:
        await sub.unsubscribe()
    assert notices, "no rate-limit notice"
    notice = notices[0]
    assert notice.type == "error"
    assert notice.sequence == 0
    data = json.loads(notice.data_json)
    assert data["error_code"] == "LLM_RATE_LIMIT"
    assert data["auto_retry"] is True
    assert data["retry_after"] == "1초"
    assert data["session_id"] == sid


# ── the job runtime's circuit breakers ─────────────────────────────────────────────────────


async def test_the_job_runtime_shares_its_breakers_through_the_settings_redis(
    settings: GenerationSettings,
    module_database_url: str,
    sessions: async_sessionmaker[AsyncSession],
    nc: NatsClient,
    js: JetStreamContext,
) -> None:
    """What one worker's router records, a breaker of another worker on the same Redis sees."""
    model = f"gpt-runtime-{uuid.uuid4().hex[:8]}"  # a breaker of this test only
    db = create_engine(module_database_url, SCHEMA)
    rt = Runtime(settings.model_copy(update={"openai_model": model}), db, sessions, nc, js)
    ctx = JobContext.create(rt)
    other = Redis.from_url(settings.redis_url)
    try:
        breaker = ctx.engine.router.breaker
        assert breaker.redis is not None
        threshold = settings.llm_breaker_failures
        for _ in range(threshold):
            await breaker.record_failure("openai", model)
        elsewhere = CircuitBreaker(other, failure_threshold=threshold)
        assert await elsewhere.state("openai", model) == "open"
        assert not await elsewhere.allow("openai", model)
    finally:
        for close in reversed(rt.closers):
            await close()
        await other.aclose()
        await db.dispose()


# ── output moderation ─────────────────────────────────────────────────────────────────────


def marked_article_job() -> tuple[events_pb2.GenerateArticleJob, str]:
    """An article job of its own and a term its answer holds (a key concept is written in)."""
    mark = f"표식{uuid.uuid4().hex[:10]}"
    context = examples.article_context("transformers", "intermediate", key_concepts=(mark,))
    sid = session_id()
    job = events_pb2.GenerateArticleJob(
        session_id=sid, article_id=f"{sid}_001", context_json=json.dumps(context)
    )
    return job, mark


async def test_an_article_flagged_once_by_moderation_is_regenerated_and_ready(
    js: JetStreamContext, results: Results, llm: FakeLLMControl
) -> None:
    job, mark = marked_article_job()
    await llm.flag_for_moderation(mark, times=1)
    await publish(js, "jobs.article.generate", job)
    event = await results.wait(
        "events.generation.article_generated", lambda e: e.article_id == job.article_id
    )
    assert mark in event.article.content
    assert event.usage.attempts == 2
    stats = await llm.stats()
    # The article twice (each moderated), then the learner's adaptation (moderated too).
    assert stats["requests"] == {"openai": 3, "moderation": 3}
    assert adaptation.FIELD in json.loads(event.article.article_json)


async def test_an_article_flagged_twice_by_moderation_fails_with_content_flagged(
    js: JetStreamContext, results: Results, llm: FakeLLMControl
) -> None:
    job, mark = marked_article_job()
    await llm.flag_for_moderation(mark)
    await publish(js, "jobs.article.generate", job)
    failed = await results.wait(
        "events.generation.task_failed", lambda e: e.session_id == job.session_id
    )
    assert (failed.task, failed.article_id) == ("article", job.article_id)
    assert failed.error_code == "CONTENT_FLAGGED"
    assert failed.message.startswith("[CONTENT_FLAGGED]")
    assert (
        results.count(
            "events.generation.article_generated", lambda e: e.session_id == job.session_id
        )
        == 0
    )
    # Moderation's verdict is final: one regeneration, no job retries.
    assert (await llm.stats())["requests"] == {"openai": 2, "moderation": 2}


async def test_a_job_s_attempt_comes_back_in_its_result_and_in_its_failure(
    js: JetStreamContext, results: Results, llm: FakeLLMControl
) -> None:
    # session-service ignores the results of an attempt a retry replaced: they must say which.
    done, _ = marked_article_job()
    done.attempt = 2
    flagged, mark = marked_article_job()
    flagged.attempt = 3
    await llm.flag_for_moderation(mark)
    await publish(js, "jobs.article.generate", done)
    await publish(js, "jobs.article.generate", flagged)
    event = await results.wait(
        "events.generation.article_generated", lambda e: e.article_id == done.article_id
    )
    assert event.attempt == 2
    failed = await results.wait(
        "events.generation.task_failed", lambda e: e.article_id == flagged.article_id
    )
    assert failed.error_code == "CONTENT_FLAGGED"
    assert failed.attempt == 3


# ── personal adaptations over shared articles ─────────────────────────────────────────────


async def test_a_second_learners_article_job_makes_only_the_adaptation_call(
    js: JetStreamContext, results: Results, llm: FakeLLMControl
) -> None:
    base = examples.unique(examples.article_context("supervised", "beginner"))
    goals = [f"사내 추천 시스템 구축 {uuid.uuid4().int % 10**8:08d}" for _ in range(2)]

    def for_learner(goal: str) -> dict[str, Any]:
        personalization = {**base["personalization"], "learning_goals": goal}
        return {**base, "personalization": personalization}

    first = await _article_event(js, results, for_learner(goals[0]))
    calls = (await llm.stats())["total"]
    assert calls == 2  # the shared article, then learner A's section
    second = await _article_event(js, results, for_learner(goals[1]))
    stats = await llm.stats()
    assert stats["total"] == calls + 1
    assert stats["recent"][-1]["schema_name"] == adaptation.SCHEMA_NAME
    again = await _article_event(js, results, for_learner(goals[0]))
    assert (await llm.stats())["total"] == calls + 1  # learner A again: no call at all

    assert goals[0] in first.article.content
    assert goals[1] not in first.article.content
    assert goals[1] in second.article.content
    assert goals[0] not in second.article.content
    assert again.article.content == first.article.content
    assert again.usage.cache_hit
    assert (again.usage.input_tokens, again.usage.output_tokens) == (0, 0)
    # B's usage: the adaptation's tokens and cost, and what the shared article saved.
    assert not second.usage.cache_hit
    assert 0 < second.usage.cost_usd < first.usage.cost_usd
    assert second.usage.saved_usd > 0
    body_a, body_b = (json.loads(e.article.article_json) for e in (first, second))
    assert adaptation.without_adaptation(body_a) == adaptation.without_adaptation(body_b)
