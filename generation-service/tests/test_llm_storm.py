"""Every provider answers 429: a session's job fails fast, within the documented number of calls.

The running service (JetStream redeliveries with the default back-offs) routes through the real
OpenAI and Anthropic SDKs to the fake LLM server. Retries, circuit breakers and the job's call
allowance are at their defaults: the README's bound is what is asserted.
"""

from __future__ import annotations

import asyncio
import json
import time
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
from infou_generation.main import SPEC
from infou_generation.settings import GenerationSettings
from infou_libs.messaging import EVENTS_STREAM, connect, ensure_streams, publish
from infou_protos.events.v1 import events_pb2

# The behaviour: a session in a 429 storm has failed within this long.
FAIL_WITHIN_S = 10.0
SUFFIX = uuid.uuid4().hex[:8]  # models of this module only: circuit breakers of their own


@pytest.fixture(scope="module")
def settings(service_settings: Callable[..., GenerationSettings]) -> GenerationSettings:
    return service_settings(
        quick_jobs=False,
        openai_model=f"gpt-storm-{SUFFIX}",
        anthropic_model=f"claude-storm-{SUFFIX}",
        llm_routes={"curriculum": ["openai", "anthropic"], "article": ["anthropic", "openai"]},
    )


@pytest.fixture(scope="module")
async def js(settings: GenerationSettings) -> AsyncIterator[JetStreamContext]:
    async with running_service(SPEC, settings):
        client: NatsClient = await connect(settings.nats_url, "generation-storm-tests")
        js = client.jetstream()
        await ensure_streams(js)
        yield js
        await client.close()


async def failed_event(js: JetStreamContext, session_id: str) -> events_pb2.GenerationFailed:
    """The session's task_failed event, or TimeoutError after FAIL_WITHIN_S (from the call)."""
    sub = await js.pull_subscribe(
        "events.generation.>",
        durable=f"storm-{uuid.uuid4().hex[:8]}",
        stream=EVENTS_STREAM,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.NEW),
    )
    try:
        async with asyncio.timeout(FAIL_WITHIN_S):
            while True:
                try:
                    msgs = await sub.fetch(10, timeout=0.5)
                except (TimeoutError, NatsTimeoutError):
                    continue
                for msg in msgs:
                    await msg.ack()
                    if msg.subject == "events.generation.task_failed":
                        event = events_pb2.GenerationFailed.FromString(msg.data)
                        if event.session_id == session_id:
                            return event
                    assert not msg.subject.endswith(("curriculum_generated", "article_generated"))
    finally:
        await sub.unsubscribe()


async def storm_session(
    js: JetStreamContext, llm: FakeLLMControl
) -> tuple[events_pb2.GenerationFailed, float, dict[str, Any]]:
    """A new session's curriculum job in the storm: its failure, seconds to it, the calls."""
    await llm.reset()
    await llm.arm("rate_limit", times=-1)  # every request, either API: 429, retry-after 1 s
    sid = f"sess_{uuid.uuid4().hex}"
    context = examples.curriculum_context(("transformers", "supervised"))
    context["personalization"]["learning_goals"] = f"폭주 {uuid.uuid4().hex[:8]}"  # no cache hit
    job = events_pb2.GenerateCurriculumJob(session_id=sid, context_json=json.dumps(context))
    waiting = asyncio.create_task(failed_event(js, sid))
    await asyncio.sleep(0.2)  # the subscription is in place before the job goes out
    started = time.monotonic()
    await publish(js, "jobs.curriculum.generate", job)
    event = await waiting
    return event, time.monotonic() - started, await llm.stats()


async def test_in_a_429_storm_a_session_fails_fast_within_the_documented_calls(
    js: JetStreamContext, settings: GenerationSettings, fake_llm: FakeLLMControl
) -> None:
    event, seconds, stats = await storm_session(js, fake_llm)
    assert event.task == "curriculum"
    assert event.error_code == "LLM_RATE_LIMIT"
    # README "Provider health": at most min(max calls per job, providers × min(1 + retries,
    # breaker failures)) calls; here 2 × min(4, 3) = 6 ≤ 8.
    bound = min(
        settings.llm_max_calls_per_job,
        2 * min(1 + settings.llm_max_retries, settings.llm_breaker_failures),
    )
    assert stats["total"] <= bound
    assert set(stats["requests"]) == {"openai", "anthropic"}  # both SDKs were tried
    assert stats["scenarios"] == {"rate_limit": stats["total"]}
    print(f"429 storm: {stats['total']} calls, failed after {seconds:.2f}s")  # noqa: T201 — the figure

    # The breakers are open for every worker: the next session fails at once, calling nobody.
    event, seconds, stats = await storm_session(js, fake_llm)
    assert event.error_code == "GENERATION_FAILED"  # no 429 seen: the breakers said no
    assert stats["total"] == 0
    print(f"429 storm, breakers open: 0 calls, failed after {seconds:.2f}s")  # noqa: T201
