"""Learning sessions through the whole stack, driven over the public HTTP and WebSocket API.

A stack of its own: two gateways and two generation workers (so a watcher on either gateway
must see what either worker produced), generation-service on the fake LLM server behind the
real OpenAI SDK, a short ack wait so that a killed worker's jobs come back soon, and short
retry back-offs. The fake server's speed and faults are set per test through its controls.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import json
import signal
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from websockets.exceptions import InvalidStatus

from infou_devtools import engines
from infou_devtools.fakellm import FakeLLMControl, FakeLLMServer
from infou_devtools.stack import ChildSpec, Stack
from infou_libs.crypto import keyring
from infou_libs.db import asyncpg_url
from infou_protos.events.v1 import events_pb2

T = TypeVar("T")
ACK_WAIT_S = 3
PER_SUB_TOPIC = 2
# Shared content (curricula, articles) is keyed without learner text: each session body takes a
# pair of sub-topics no other body of this module took, so no test is served another's content.
_FRESH_PAIRS = itertools.combinations(range(8), 2)


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as server:
        yield server


@pytest.fixture(scope="module")
def second_gateway() -> int:
    return engines.free_port()


@pytest.fixture(scope="module")
async def stack(
    pg_server_url: str,
    fake_llm: FakeLLMServer,
    second_gateway: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Stack]:
    data_dir = tmp_path_factory.mktemp("sessions-stack")
    stack = Stack(
        data_dir=data_dir,
        gateway_port=engines.free_port(),
        database_url=pg_server_url,
        database_name=f"infou_e2e_sess_{uuid.uuid4().hex[:8]}",
        fast_engines=True,
        extra_env={
            "INFOU_ENVIRONMENT": "test",
            "INFOU_LOG_JSON": "true",
            "INFOU_RATE_LIMIT_PER_MINUTE": "0",
            "INFOU_OPENAI_API_KEY": "sk-fake-e2e",
            "INFOU_OPENAI_BASE_URL": fake_llm.openai_base_url,
            "INFOU_LLM_MAX_RETRIES": "0",
            # A failing session is retried at once: no breaker may still cool the provider down.
            "INFOU_LLM_BREAKER_FAILURES": "20",
            "INFOU_JOBS_ACK_WAIT_SECONDS": str(ACK_WAIT_S),
            "INFOU_JOBS_RETRY_BACKOFF_SECONDS": "[0.5, 1, 1]",
            "INFOU_HEARTBEAT_SECONDS": "2",
        },
        extra_children=[
            ChildSpec(
                "gateway2",
                [sys.executable, "-m", "infou_gateway"],
                {"INFOU_PORT": str(second_gateway), "INFOU_SERVICE_NAME": "gateway2"},
            ),
            ChildSpec(
                "generation2",
                [sys.executable, "-m", "infou_generation"],
                {
                    "INFOU_GRPC_PORT": str(engines.free_port()),
                    "INFOU_METRICS_PORT": str(engines.free_port()),
                    "INFOU_SERVICE_NAME": "generation2",
                },
            ),
        ],
        echo=False,
        log_file=data_dir / "stack.log",
    )
    try:
        await stack.start(ready_timeout=120)
        await _healthy(f"http://127.0.0.1:{second_gateway}", 60)
    except Exception:
        await stack.stop()
        raise
    yield stack
    await stack.stop()
    await engines.drop_database(pg_server_url, stack.database_name)


async def _healthy(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=5) as client:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"{url}/health")).status_code == 200:
                    return
            await asyncio.sleep(0.3)
    raise TimeoutError(f"{url} not healthy")


@pytest.fixture(scope="module")
def gateways(stack: Stack, second_gateway: int) -> tuple[str, str]:
    """host:port of both gateways."""
    return stack.gateway_url.removeprefix("http://"), f"127.0.0.1:{second_gateway}"


@pytest.fixture
async def api(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=15.0) as client:
        yield client


@pytest.fixture
async def llm(fake_llm: FakeLLMServer) -> AsyncIterator[FakeLLMControl]:
    control = FakeLLMControl(fake_llm.url)
    await control.reset()
    yield control
    await control.reset()


@pytest.fixture(scope="module")
async def db(stack: Stack) -> AsyncIterator[AsyncEngine]:
    assert stack.database_url is not None
    engine = create_async_engine(asyncpg_url(stack.database_url))
    yield engine
    await engine.dispose()


@pytest.fixture(scope="module")
async def topic(stack: Stack) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=15.0) as client:
        return dict((await client.get("/main-topics/ai-ml")).json())


def session_body(topic: dict[str, Any], goals: str | None = None) -> dict[str, Any]:
    """A session of its own: sub-topics no other body chose (see `_FRESH_PAIRS`), its own goal."""
    pair = next(_FRESH_PAIRS)
    return {
        "main_topic_id": topic["id"],
        "sub_topic_ids": [topic["sub_topics"][i]["id"] for i in pair],
        "level": "intermediate",
        "personalization": {
            "learning_pace": "regular",
            "preferred_article_length": "short",
            "include_examples": True,
            "interests": ["자동화"],
            # Korean and digits: a goal the writers show back in the learner's own section.
            "learning_goals": goals or f"업무 자동화 {uuid.uuid4().int % 10**8:08d}",
        },
        "options": {"max_articles_per_subtopic": PER_SUB_TOPIC, "include_practice_problems": False},
    }


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def eventually(
    probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], timeout: float = 90.0
) -> T:
    deadline = time.monotonic() + timeout
    result = await probe()
    while not done(result) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        result = await probe()
    return result


async def status_of(api: httpx.AsyncClient, created: dict[str, Any]) -> dict[str, Any]:
    reply = await api.get(
        f"/sessions/{created['session_id']}", headers=auth(created["access_token"])
    )
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


async def until_status(
    api: httpx.AsyncClient, created: dict[str, Any], status: str, timeout: float = 90.0
) -> dict[str, Any]:
    body = await eventually(
        lambda: status_of(api, created), lambda b: b["status"] == status, timeout
    )
    assert body["status"] == status, body
    return body


@dataclass
class Watcher:
    """A WebSocket client collecting every message in the background."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    subprotocol: str | None = None

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] == kind]

    async def until(
        self,
        kind: str,
        match: Callable[[dict[str, Any]], bool] = lambda _d: True,
        timeout: float = 90.0,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self.messages:
                if message["type"] == kind and match(message["data"]):
                    return message
            if self.task is not None and self.task.done():
                self.task.result()
            await asyncio.sleep(0.1)
        raise TimeoutError(f"no {kind}; got {[m['type'] for m in self.messages]}")


@contextlib.asynccontextmanager
async def watching(
    gateway: str, session_id: str, token: str, *, subprotocol: bool = False
) -> AsyncIterator[Watcher]:
    watcher = Watcher()
    url = f"ws://{gateway}/sessions/{session_id}/ws"
    kwargs: dict[str, Any] = {"max_size": None}
    if subprotocol:
        kwargs["subprotocols"] = ["infou.v1", token]
    else:
        kwargs["additional_headers"] = auth(token)
    async with websockets.connect(url, **kwargs) as ws:
        watcher.subprotocol = ws.subprotocol

        async def collect() -> None:
            with contextlib.suppress(websockets.ConnectionClosed):
                async for raw in ws:
                    watcher.messages.append(json.loads(raw))

        watcher.task = asyncio.create_task(collect())
        try:
            yield watcher
        finally:
            watcher.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher.task


async def read_in_order(
    api: httpx.AsyncClient, created: dict[str, Any], first_id: str
) -> list[dict[str, Any]]:
    """Every article, from the first, following next_article_id."""
    articles: list[dict[str, Any]] = []
    article_id: str | None = first_id
    while article_id is not None:
        reply = await api.get(f"/articles/{article_id}", headers=auth(created["access_token"]))
        assert reply.status_code == 200, reply.text
        articles.append(reply.json())
        article_id = reply.json()["next_article_id"]
        assert len(articles) <= 50
    return articles


# ── the main path ──────────────────────────────────────────────────────────────────────


@pytest.mark.usefixtures("llm")
async def test_create_watch_read_in_order_convert_and_read_the_variant(
    api: httpx.AsyncClient, gateways: tuple[str, str], topic: dict[str, Any]
) -> None:
    started = time.monotonic()
    posted = session_body(topic)
    reply = await api.post("/sessions", json=posted)
    assert reply.status_code == 201, reply.text
    assert time.monotonic() - started < 2.0
    created = reply.json()
    sid, token = created["session_id"], created["access_token"]
    assert created["status"] == "initializing"
    assert created["websocket_url"] == f"ws://{gateways[0]}/sessions/{sid}/ws"
    assert created["estimated_articles"] == 2 * PER_SUB_TOPIC

    # One watcher on each gateway: each must see every event, whichever worker caused it.
    async with (
        watching(gateways[0], sid, token) as first,
        watching(gateways[1], sid, token, subprotocol=True) as second,
    ):
        assert second.subprotocol == "infou.v1"
        for watcher in (first, second):
            await watcher.until("generation_complete")
            assert watcher.messages[0]["type"] == "snapshot"
        curriculum = (await api.get(f"/sessions/{sid}/curriculum", headers=auth(token))).json()
        ids = [item["id"] for item in curriculum["items"]]
        for watcher in (first, second):
            ready = [m["data"]["article_id"] for m in watcher.of("article_ready")]
            assert sorted(ready) == sorted(ids)
            progress = watcher.of("generation_progress")
            assert progress[-1]["data"]["progress"]["completed"] == len(ids)
            assert progress[-1]["data"]["progress"]["total"] == len(ids)
            complete = watcher.of("generation_complete")[0]["data"]
            assert complete["total_articles"] == len(ids)
            assert complete["ready_to_start"] is True

        # The learner reads: the curriculum in order, each article by next_article_id.
        assert curriculum["title"]
        assert curriculum["level"] == "intermediate"
        assert 2 <= len(ids) <= 2 * PER_SUB_TOPIC
        assert [item["order"] for item in curriculum["items"]] == list(range(1, len(ids) + 1))
        assert all(item["content_ready"] for item in curriculum["items"])
        assert {item["sub_topic_id"] for item in curriculum["items"]} <= set(
            posted["sub_topic_ids"]
        )
        articles = await read_in_order(api, created, ids[0])
        assert [a["id"] for a in articles] == ids
        assert [a["previous_article_id"] for a in articles] == [None, *ids[:-1]]
        for article in articles:
            assert article["content"].startswith("## ")
            assert article["word_count"] > 50
            assert article["level"] == "intermediate"
            assert article["estimated_read_time"].endswith("분")
            assert article["metadata"]["generation_prompt"].startswith("[infou_article")
            assert 0 < article["metadata"]["quality_score"] <= 1
            quality = article["metadata"]["quality"]
            assert quality["passed"] is True
            assert quality["judged"] is True  # written by a model (the fake LLM), not offline
            assert article["metadata"]["offline"] is False
            assert quality["score"] >= quality["threshold"]
            assert quality["checks"]["word_count"] > 0
            assert article["difficulty_variants"] == {
                "available_levels": ["intermediate"],
                "current_level": "intermediate",
            }

        session = await status_of(api, created)
        assert session["status"] == "ready"
        info = session["generation_info"]
        assert info["total_tokens_used"] > 0
        assert info["cost"] > 0
        assert info["llm_model"]
        assert info["llm_model"] != "offline"
        assert info["cached_results"] == 0
        assert info["saved_cost"] == 0
        assert session["curriculum"]["generated_articles"] == len(ids)

        # Another level: queued, announced on the WebSocket, then served at that level.
        target = ids[0]
        accepted = await api.get(
            f"/articles/{target}/convert", params={"target_level": "beginner"}, headers=auth(token)
        )
        assert accepted.status_code == 202, accepted.text
        task_id = accepted.json()["task_id"]
        done = await second.until("conversion_complete", lambda d: d["task_id"] == task_id)
        assert done["data"]["status"] == "ready"
        await first.until("conversion_complete", lambda d: d["task_id"] == task_id)
        # A quiet stream still carries heartbeats.
        await first.until("heartbeat", timeout=10)
    variant = await api.get(
        f"/articles/{target}", params={"level": "beginner"}, headers=auth(token)
    )
    assert variant.status_code == 200, variant.text
    body = variant.json()
    assert body["level"] == "beginner"
    assert body["content"] != articles[0]["content"]
    assert body["difficulty_variants"]["available_levels"] == ["beginner", "intermediate"]
    assert body["next_article_id"] == articles[0]["next_article_id"]
    again = await api.get(
        f"/articles/{target}/convert", params={"target_level": "beginner"}, headers=auth(token)
    )
    assert again.status_code == 200
    assert again.json()["content"] == body["content"]
    same = await api.get(
        f"/articles/{target}/convert", params={"target_level": "intermediate"}, headers=auth(token)
    )
    assert same.status_code == 200
    assert same.json()["content"] == articles[0]["content"]


async def test_the_same_choices_again_come_from_the_cache_with_zero_tokens(
    api: httpx.AsyncClient, topic: dict[str, Any], llm: FakeLLMControl
) -> None:
    body = session_body(topic)
    first = (await api.post("/sessions", json=body)).json()
    done = await until_status(api, first, "ready")
    assert done["generation_info"]["total_tokens_used"] > 0
    calls = (await llm.stats())["total"]

    started = time.monotonic()
    second = (await api.post("/sessions", json=body)).json()
    ready = await until_status(api, second, "ready", timeout=15)
    assert time.monotonic() - started < 10
    info = ready["generation_info"]
    assert info["total_tokens_used"] == 0
    assert info["cost"] == 0
    assert info["cached_results"] == ready["curriculum"]["total_articles"] + 1
    assert (await llm.stats())["total"] == calls
    assert ready["curriculum"]["title"] == done["curriculum"]["title"]


def generation_calls(stats: dict[str, Any]) -> int:
    """Requests that write content (the fake server's total leaves moderation requests out)."""
    return int(stats["total"])


async def counter_total(stack: Stack, counter: str, *processes: str) -> float:
    """The counter (its name without `_total`) summed over the processes and their labels."""
    total = 0.0
    async with httpx.AsyncClient(timeout=5) as client:
        for name in processes:
            port = stack.children[name].spec.env["INFOU_METRICS_PORT"]
            text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
            for family in text_string_to_metric_families(text):
                if family.name == counter:
                    total += sum(s.value for s in family.samples if s.name.endswith("_total"))
    return total


async def cache_saved_usd(stack: Stack) -> float:
    """infou_generation_cache_saved_usd_total summed over both generation workers."""
    return await counter_total(
        stack, "infou_generation_cache_saved_usd", "generation", "generation2"
    )


async def test_a_session_that_differs_only_in_pace_is_served_from_the_cache(
    api: httpx.AsyncClient, stack: Stack, topic: dict[str, Any], llm: FakeLLMControl
) -> None:
    body = session_body(topic)
    # Only the choices of PRD §3.4, no learner text: content every learner may share.
    for learner_text in ("interests", "learning_goals"):
        del body["personalization"][learner_text]
    body["level"] = "beginner"  # content no other test of this module writes
    first = (await api.post("/sessions", json=body)).json()
    done = await until_status(api, first, "ready")
    assert done["generation_info"]["cost"] > 0
    assert done["generation_info"]["saved_cost"] == 0
    calls = generation_calls(await llm.stats())
    assert calls > 0
    saved_before = await cache_saved_usd(stack)

    body["personalization"]["learning_pace"] = "intensive"
    second = (await api.post("/sessions", json=body)).json()
    ready = await until_status(api, second, "ready")
    info = ready["generation_info"]
    # Pace is not in the content key: the curriculum and every article come from the cache.
    assert generation_calls(await llm.stats()) == calls
    assert info["total_tokens_used"] == 0
    assert info["cost"] == 0
    assert info["cached_results"] == ready["curriculum"]["total_articles"] + 1
    # What the first session paid for, to the ledger's precision.
    assert info["saved_cost"] > 0
    assert info["saved_cost"] == pytest.approx(done["generation_info"]["cost"], abs=1e-5)
    assert await cache_saved_usd(stack) == pytest.approx(
        saved_before + info["saved_cost"], abs=1e-5
    )
    assert ready["curriculum"]["title"] == done["curriculum"]["title"]


async def test_another_learner_pays_only_for_the_personal_sections(
    api: httpx.AsyncClient, stack: Stack, topic: dict[str, Any], llm: FakeLLMControl
) -> None:
    body_a = session_body(topic)
    body_b = copy.deepcopy(body_a)
    goal_a = body_a["personalization"]["learning_goals"]
    goal_b = f"사진 분류기 만들기 {uuid.uuid4().int % 10**8:08d}"
    body_b["personalization"]["learning_goals"] = goal_b
    first = (await api.post("/sessions", json=body_a)).json()
    done = await until_status(api, first, "ready")
    calls = generation_calls(await llm.stats())
    saved_before = await cache_saved_usd(stack)

    second = (await api.post("/sessions", json=body_b)).json()
    ready = await until_status(api, second, "ready")
    articles = ready["curriculum"]["total_articles"]
    stats = await llm.stats()
    # The curriculum and every article are shared: B's calls are one adaptation per article.
    assert generation_calls(stats) == calls + articles
    llm_calls = [r for r in stats["recent"] if r["api"] in ("openai", "anthropic")]
    assert {r["schema_name"] for r in llm_calls[-articles:]} == {"infou_article_adaptation"}
    info = ready["generation_info"]
    assert 0 < info["cost"] < done["generation_info"]["cost"]
    assert info["saved_cost"] > 0
    assert await cache_saved_usd(stack) >= saved_before + info["saved_cost"] - 1e-5
    assert ready["curriculum"]["title"] == done["curriculum"]["title"]

    # Each learner's section is in their own articles only.
    for created, mine, theirs in ((first, goal_a, goal_b), (second, goal_b, goal_a)):
        curriculum = (
            await api.get(
                f"/sessions/{created['session_id']}/curriculum",
                headers=auth(created["access_token"]),
            )
        ).json()
        for article in await read_in_order(api, created, curriculum["items"][0]["id"]):
            assert mine in article["content"]
            assert theirs not in article["content"]

    # Learner A again, same text: the shared content and A's own sections, not a single call.
    third = (await api.post("/sessions", json=body_a)).json()
    again = await until_status(api, third, "ready")
    assert generation_calls(await llm.stats()) == calls + articles
    assert again["generation_info"]["cost"] == 0
    assert again["generation_info"]["cached_results"] == articles + 1
    assert again["generation_info"]["saved_cost"] > 0


async def test_a_failure_is_reported_and_the_session_retried(
    api: httpx.AsyncClient, gateways: tuple[str, str], topic: dict[str, Any], llm: FakeLLMControl
) -> None:
    await llm.arm("server_error", times=-1)
    created = (await api.post("/sessions", json=session_body(topic))).json()
    sid, token = created["session_id"], created["access_token"]
    async with watching(gateways[1], sid, token) as watcher:
        error = await watcher.until("error")
        assert error["data"]["error_code"] == "GENERATION_FAILED"
        assert error["data"]["auto_retry"] is False
        failed = await until_status(api, created, "failed")
        assert failed["failure_reason"]
        await llm.reset()
        retried = await api.post(f"/sessions/{sid}/retry", headers=auth(token))
        assert retried.status_code == 202, retried.text
        await watcher.until("generation_complete")
    ready = await until_status(api, created, "ready")
    assert ready["failure_reason"] is None


@pytest.mark.parametrize("retry_at", ["first_run_ended", "first_failure"])
async def test_expert_text_for_an_absolute_beginner_fails_with_its_code_and_is_retried(
    api: httpx.AsyncClient,
    gateways: tuple[str, str],
    topic: dict[str, Any],
    llm: FakeLLMControl,
    stack: Stack,
    retry_at: str,
) -> None:
    stale_before = await counter_total(stack, "infou_session_stale_results", "session")
    if retry_at == "first_failure":
        # One article's first call hangs: the first run surely still writes it at the retry.
        await llm.arm("timeout", times=1, task="article", hang_s=8)
    # The model writes every article for an expert; the route has one provider.
    await llm.arm("wrong_level", times=-1)
    body = session_body(topic) | {"level": "absolute_beginner"}
    created = (await api.post("/sessions", json=body)).json()
    sid, token = created["session_id"], created["access_token"]
    async with watching(gateways[1], sid, token) as watcher:
        error = await watcher.until("error")
        assert error["data"]["error_code"] == "QUALITY_BELOW_THRESHOLD"
        failed = await until_status(api, created, "failed")
        assert "QUALITY_BELOW_THRESHOLD" in failed["failure_reason"]
        curriculum = (await api.get(f"/sessions/{sid}/curriculum", headers=auth(token))).json()

        if retry_at == "first_run_ended":
            # The session is failed at its first failed article; the others may still be
            # written. Here each ends failed too before the retry.
            async def errors() -> int:
                return len(watcher.of("error"))

            await eventually(errors, lambda n: n >= len(curriculum["items"]), timeout=60)
            assert not watcher.of("article_ready")  # never served
            curriculum = (await api.get(f"/sessions/{sid}/curriculum", headers=auth(token))).json()
            assert not any(item["content_ready"] for item in curriculum["items"])
        # Otherwise the retry comes at once, and writes the hung article again too.

        await llm.reset()  # the model now writes for the level it is asked
        retried = await api.post(f"/sessions/{sid}/retry", headers=auth(token))
        assert retried.status_code == 202, retried.text
        await watcher.until("generation_complete")
    ready = await until_status(api, created, "ready")
    assert ready["failure_reason"] is None
    assert ready["curriculum"]["failed_articles"] == 0
    if retry_at == "first_failure":
        # The first run's late answer for the hung article belongs to the attempt the retry
        # replaced: session-service ignores it (and the job is over before the next test).
        async def stale() -> float:
            return await counter_total(stack, "infou_session_stale_results", "session")

        assert await eventually(stale, lambda n: n > stale_before, timeout=60) > stale_before
        assert (await until_status(api, created, "ready"))["curriculum"]["failed_articles"] == 0
    first = curriculum["items"][0]["id"]
    for article in await read_in_order(api, created, first):
        quality = article["metadata"]["quality"]
        assert quality["passed"] is True
        assert "level_mismatch" not in quality["warnings"]
        assert article["level"] == "absolute_beginner"


@pytest.mark.usefixtures("llm")
async def test_generated_and_curated_sub_topics_mix_but_not_across_main_topics(
    api: httpx.AsyncClient, topic: dict[str, Any]
) -> None:
    reply = await api.post(
        "/sub-topics/generate",
        json={
            "main_topic_id": topic["id"],
            "personalization": {"interests": ["chatbot"], "current_level": "intermediate"},
            "options": {"max_subtopics": 2},
        },
    )
    assert reply.status_code == 202, reply.text
    generation_id = reply.json()["generation_id"]
    result = await eventually(
        lambda: _json(api.get(f"/sub-topics/generated/{generation_id}")),
        lambda r: r["status"] != "processing",
        timeout=60,
    )
    assert result["status"] == "completed", result
    generated = result["items"][0]

    body = session_body(topic) | {"sub_topic_ids": [topic["sub_topics"][0]["id"], generated["id"]]}
    created = await api.post("/sessions", json=body)
    assert created.status_code == 201, created.text
    session = await until_status(api, created.json(), "ready")
    assert session["sub_topic_ids"] == body["sub_topic_ids"]
    curriculum = (
        await api.get(
            f"/sessions/{session['session_id']}/curriculum",
            headers=auth(created.json()["access_token"]),
        )
    ).json()
    assert {item["sub_topic_id"] for item in curriculum["items"]} <= set(body["sub_topic_ids"])
    assert generated["name"] in {item["sub_topic"] for item in curriculum["items"]}

    others = (await api.get("/main-topics", params={"limit": 5})).json()["items"]
    other = next(t for t in others if t["id"] != topic["id"])
    other_curated = (await api.get(f"/main-topics/{other['slug']}")).json()["sub_topics"][0]["id"]
    refused = await api.post(
        "/sessions",
        json=session_body(topic)
        | {"main_topic_id": other["id"], "sub_topic_ids": [other_curated, generated["id"]]},
    )
    assert refused.status_code == 422
    assert refused.json()["error"]["field"] == "sub_topic_ids.1"


async def _json(request: Awaitable[httpx.Response]) -> dict[str, Any]:
    reply = await request
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


# ── nothing lost ───────────────────────────────────────────────────────────────────────


async def test_workers_killed_mid_session_leave_exactly_the_right_articles(
    api: httpx.AsyncClient,
    stack: Stack,
    gateways: tuple[str, str],
    topic: dict[str, Any],
    llm: FakeLLMControl,
    db: AsyncEngine,
) -> None:
    # Slow answers: the article jobs are surely in flight when the workers die.
    await llm.configure(ttft_ms=1500)
    created = (await api.post("/sessions", json=session_body(topic))).json()
    sid, token = created["session_id"], created["access_token"]
    async with watching(gateways[0], sid, token) as watcher:
        await until_status(api, created, "generating")
        await eventually(lambda: _requests(llm), lambda n: n >= 3, timeout=30)
        assert not watcher.of("article_ready")
        for worker in ("generation", "generation2"):
            await stack.kill(worker, signal.SIGKILL)
        await llm.configure(ttft_ms=0)
        # The supervisor restarts both; JetStream hands them the un-acked jobs.
        await watcher.until("generation_complete", timeout=120)
    await stack.wait_healthy(timeout=60)
    assert stack.children["generation"].restarts >= 1
    assert stack.children["generation2"].restarts >= 1
    ready = await until_status(api, created, "ready")
    total = ready["curriculum"]["total_articles"]
    assert ready["curriculum"]["generated_articles"] == total

    # Exactly one announcement and one stored article per curriculum item, no more.
    ready_ids = Counter(m["data"]["article_id"] for m in watcher.of("article_ready"))
    assert set(ready_ids.values()) == {1}
    assert len(ready_ids) == total
    async with db.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT order_num, status FROM session.generated_articles"
                    " WHERE session_id = :sid ORDER BY order_num"
                ),
                {"sid": sid},
            )
        ).all()
        payloads = (
            (
                await conn.execute(
                    text(
                        "SELECT payload FROM generation.outbox"
                        " WHERE subject = 'events.generation.article_generated'"
                    )
                )
            )
            .scalars()
            .all()
        )
    assert [r.order_num for r in rows] == list(range(1, total + 1))
    assert {r.status for r in rows} == {"ready"}
    published = Counter(
        e.article_id
        # Event payloads are encrypted at rest.
        for e in (
            events_pb2.ArticleGenerated.FromString(keyring().decrypt(bytes(p).decode()))
            for p in payloads
        )
        if e.session_id == sid
    )
    assert set(published.values()) == {1}
    assert len(published) == total


async def _requests(llm: FakeLLMControl) -> int:
    stats = await llm.stats()
    return int(stats["total"])


async def test_a_session_service_restart_mid_generation_still_ends_ready(
    api: httpx.AsyncClient,
    stack: Stack,
    gateways: tuple[str, str],
    topic: dict[str, Any],
    llm: FakeLLMControl,
) -> None:
    await llm.configure(ttft_ms=1000)
    created = (await api.post("/sessions", json=session_body(topic))).json()
    sid, token = created["session_id"], created["access_token"]
    async with watching(gateways[1], sid, token) as watcher:
        await until_status(api, created, "generating")
        await stack.kill("session", signal.SIGKILL)
        await llm.configure(ttft_ms=0)
        await watcher.until("generation_complete", timeout=120)
    await stack.wait_healthy(timeout=60)
    ready = await until_status(api, created, "ready")
    assert ready["curriculum"]["generated_articles"] == ready["curriculum"]["total_articles"]
    assert stack.children["session"].restarts >= 1


# ── access and bad input ───────────────────────────────────────────────────────────────


async def test_tokens_guard_every_endpoint_and_the_websocket(
    api: httpx.AsyncClient, gateways: tuple[str, str], topic: dict[str, Any]
) -> None:
    mine = (await api.post("/sessions", json=session_body(topic))).json()
    theirs = (await api.post("/sessions", json=session_body(topic))).json()
    sid = mine["session_id"]
    await until_status(api, mine, "ready")
    paths = [
        ("GET", f"/sessions/{sid}", {}),
        ("GET", f"/sessions/{sid}/curriculum", {}),
        ("POST", f"/sessions/{sid}/retry", {}),
        ("GET", f"/articles/{sid}_001", {}),
        ("GET", f"/articles/{sid}_001/convert", {"target_level": "expert"}),
    ]
    for method, path, params in paths:
        assert (await api.request(method, path, params=params)).status_code == 401
        wrong = await api.request(method, path, params=params, headers=auth("st_" + "A" * 43))
        assert wrong.status_code == 401
        other = await api.request(method, path, params=params, headers=auth(theirs["access_token"]))
        assert other.status_code == 404
    for headers, status in (({}, 401), (auth(theirs["access_token"]), 404)):
        with pytest.raises(InvalidStatus) as caught:
            async with websockets.connect(
                f"ws://{gateways[0]}/sessions/{sid}/ws", additional_headers=headers
            ):
                pass
        assert caught.value.response.status_code == status


@pytest.mark.parametrize(
    ("method", "path", "body", "params", "field"),
    [
        (
            "POST",
            "/sessions",
            {"sub_topic_ids": ["curated_1"], "level": "beginner"},
            {},
            "main_topic_id",
        ),
        (
            "POST",
            "/sessions",
            {"main_topic_id": 999999, "sub_topic_ids": ["curated_1"], "level": "beginner"},
            {},
            "main_topic_id",
        ),
        (
            "POST",
            "/sessions",
            {"main_topic_id": 1, "sub_topic_ids": [], "level": "beginner"},
            {},
            "sub_topic_ids",
        ),
        (
            "POST",
            "/sessions",
            {"main_topic_id": 1, "sub_topic_ids": ["generated_x"], "level": "beginner"},
            {},
            "sub_topic_ids.0",
        ),
        (
            "POST",
            "/sessions",
            {
                "main_topic_id": 1,
                "sub_topic_ids": ["generated_AAAAAAAAAAAAAAAAAAAAAA"],
                "level": "beginner",
            },
            {},
            "sub_topic_ids.0",
        ),
        (
            "POST",
            "/sessions",
            {"main_topic_id": 1, "sub_topic_ids": ["curated_1"], "level": "guru"},
            {},
            "level",
        ),
        ("GET", "/articles/x/convert", None, {"target_level": "guru"}, "target_level"),
        ("GET", "/articles/x", None, {"level": "guru"}, "level"),
    ],
)
async def test_bad_input_is_a_4xx_naming_the_field(
    api: httpx.AsyncClient, method: str, path: str, body: Any, params: dict[str, str], field: str
) -> None:
    reply = await api.request(
        method, path, json=body, params=params, headers=auth("st_" + "A" * 43)
    )
    assert reply.status_code == 422, reply.text
    assert reply.json()["error"]["field"] == field


async def test_a_create_replayed_with_its_idempotency_key_returns_the_same_session(
    api: httpx.AsyncClient, topic: dict[str, Any], db: AsyncEngine
) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    body = session_body(topic)
    first = await api.post("/sessions", json=body, headers=key)
    again = await api.post("/sessions", json=body, headers=key)
    assert (first.status_code, again.status_code) == (201, 201), again.text
    assert again.json()["session_id"] == first.json()["session_id"]
    # The replay's token opens the session: a client that lost the first answer is whole.
    assert again.json()["access_token"] == first.json()["access_token"]
    got = await api.get(
        f"/sessions/{first.json()['session_id']}", headers=auth(again.json()["access_token"])
    )
    assert got.status_code == 200
    async with db.connect() as conn:
        count = await conn.scalar(
            text("SELECT count(*) FROM session.learning_sessions WHERE id = :id"),
            {"id": first.json()["session_id"]},
        )
    assert count == 1
    reused = await api.post("/sessions", json={**body, "level": "beginner"}, headers=key)
    assert reused.status_code == 422
    assert reused.json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"

    generation = {"main_topic_id": topic["id"], "personalization": {"interests": ["자동화"]}}
    one = await api.post("/sub-topics/generate", json=generation, headers=key)
    two = await api.post("/sub-topics/generate", json=generation, headers=key)
    assert (one.status_code, two.status_code) == (202, 202), two.text
    assert one.json()["generation_id"] == two.json()["generation_id"]
