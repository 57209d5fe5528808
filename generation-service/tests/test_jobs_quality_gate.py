"""The quality gate decides, through the running service: an article job whose model writes for
the wrong level (the fake LLM server's `wrong_level`: expert text for an absolute beginner) is
written again by the next provider on the route, or fails with QUALITY_BELOW_THRESHOLD — never
published as generated.

Real Postgres, JetStream and the running generation service; the fake server behind the real
OpenAI and Anthropic SDKs; the route for articles is openai, then anthropic.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import content_examples as examples
import pytest
from nats.aio.client import Client as NatsClient
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

from infou_devtools.fakellm import FakeLLMControl
from infou_devtools.testing import running_service
from infou_generation.content import adaptation
from infou_generation.main import SPEC
from infou_generation.settings import GenerationSettings
from infou_libs.messaging import EVENTS_STREAM, connect, ensure_streams, publish
from infou_protos.events.v1 import events_pb2

GENERATED = "events.generation.article_generated"
FAILED = "events.generation.task_failed"


@pytest.fixture(scope="module")
def settings(service_settings: Callable[..., GenerationSettings]) -> GenerationSettings:
    return service_settings(
        llm_routes={"article": ["openai", "anthropic"]},
        llm_providers={
            "openai": {"input_usd_per_token": "0.000002", "output_usd_per_token": "0.000008"},
            "anthropic": {"input_usd_per_token": "0.000003", "output_usd_per_token": "0.000015"},
        },
    )


@pytest.fixture(scope="module")
async def js(settings: GenerationSettings, module_nats_url: str) -> AsyncIterator[JetStreamContext]:
    async with running_service(SPEC, settings):
        client: NatsClient = await connect(module_nats_url, "generation-quality-gate-tests")
        await ensure_streams(client.jetstream())
        yield client.jetstream()
        await client.close()


class Outcomes:
    """The article results on EVENTS (generated or failed), by article id."""

    def __init__(self, sub: JetStreamContext.PullSubscription) -> None:
        self.sub = sub
        self.seen: list[tuple[str, Any]] = []

    async def first(self, article_id: str, timeout: float = 30.0) -> tuple[str, Any]:
        """The first result for `article_id`: (subject, decoded event)."""
        kinds: dict[str, Any] = {
            GENERATED: events_pb2.ArticleGenerated,
            FAILED: events_pb2.GenerationFailed,
        }
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for subject, event in self.seen:
                if event.article_id == article_id:
                    return subject, event
            if loop.time() > deadline:
                raise TimeoutError(f"no result for {article_id}")
            try:
                msgs = await self.sub.fetch(20, timeout=0.5)
            except (TimeoutError, NatsTimeoutError):
                continue
            for msg in msgs:
                await msg.ack()
                if msg.subject in kinds:
                    self.seen.append((msg.subject, kinds[msg.subject].FromString(msg.data)))

    def count(self, subject: str, article_id: str) -> int:
        return sum(1 for s, e in self.seen if s == subject and e.article_id == article_id)


@pytest.fixture(scope="module")
async def outcomes(js: JetStreamContext) -> AsyncIterator[Outcomes]:
    sub = await js.pull_subscribe(
        "events.generation.>",
        durable="test-quality-gate-results",
        stream=EVENTS_STREAM,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
    )
    yield Outcomes(sub)
    await sub.unsubscribe()


@pytest.fixture
async def llm(fake_llm: FakeLLMControl) -> AsyncIterator[FakeLLMControl]:
    yield fake_llm
    await fake_llm.reset()


async def _enqueue(js: JetStreamContext, sub_topic: str, level: str) -> str:
    """An article job for a context no other test uses (the content cache is shared), from a
    learner who wrote nothing: the gate's calls alone, no personal adaptation after them."""
    context = examples.unique(examples.article_context(sub_topic, level, length="short"))
    for key in adaptation.LEARNER_TEXT:
        context["personalization"].pop(key)
    sid = f"sess_{uuid.uuid4().hex}"
    job = events_pb2.GenerateArticleJob(
        session_id=sid, article_id=f"{sid}_001", context_json=json.dumps(context)
    )
    await publish(js, "jobs.article.generate", job)
    return job.article_id


@pytest.mark.parametrize("sub_topic", sorted(examples.SUB_TOPICS))
async def test_expert_text_for_an_absolute_beginner_goes_to_the_next_provider(
    js: JetStreamContext, outcomes: Outcomes, llm: FakeLLMControl, sub_topic: str
) -> None:
    await llm.arm("wrong_level", times=-1, api="openai")
    article_id = await _enqueue(js, sub_topic, "absolute_beginner")

    subject, event = await outcomes.first(article_id)

    assert subject == GENERATED, event
    # Twice on openai (the answer, then the retry told the gate's findings), then anthropic.
    assert event.usage.provider == "anthropic"
    assert event.usage.attempts == 3
    report = json.loads(event.article.quality_report_json)
    assert report["passed"] is True
    assert "level_mismatch" not in report["warnings"]
    stats = await llm.stats()
    assert stats["scenarios"] == {"wrong_level": 2}
    # LLM calls (the passing answer's moderation request is counted apart).
    assert stats["requests"].get("openai") == 2
    assert stats["requests"].get("anthropic") == 1


@pytest.mark.parametrize("sub_topic", sorted(examples.SUB_TOPICS))
async def test_expert_text_from_every_provider_fails_the_article_never_ready(
    js: JetStreamContext, outcomes: Outcomes, llm: FakeLLMControl, sub_topic: str
) -> None:
    await llm.arm("wrong_level", times=-1)
    article_id = await _enqueue(js, sub_topic, "absolute_beginner")

    subject, event = await outcomes.first(article_id)

    assert subject == FAILED, event
    assert (event.task, event.error_code) == ("article", "QUALITY_BELOW_THRESHOLD")
    assert "QUALITY_BELOW_THRESHOLD" in event.message
    # The gate's verdict is final (no job retry asks again); nothing is published as written.
    assert (await llm.stats())["scenarios"] == {"wrong_level": 3}
    assert outcomes.count(GENERATED, article_id) == 0
    assert outcomes.count(FAILED, article_id) == 1
