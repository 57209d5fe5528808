"""WebSocket /sessions/{id}/ws through a real gateway (uvicorn) in front of real catalog-,
session- and realtime-service: the snapshot first, then every event; token checks at the
handshake; the connection registry; a stuck client dropped while another gets everything; many
watchers of one session on one Watch stream.
The test plays the generation worker (jobs from JetStream, results back as events)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import grpc
import httpx
import pytest
import uvicorn
import websockets
from nats.aio.client import Client as NatsClient
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

from infou_catalog.main import SPEC as CATALOG_SPEC
from infou_catalog.settings import CatalogSettings
from infou_devtools import engines
from infou_devtools.testing import running_service
from infou_gateway.app import create_app
from infou_gateway.settings import GatewaySettings
from infou_generation.main import API_SPEC as GENERATION_API_SPEC
from infou_generation.settings import GenerationSettings
from infou_libs.crypto import keyring
from infou_libs.db import asyncpg_url
from infou_libs.messaging import JOBS_STREAM, connect, ensure_streams, publish
from infou_protos.events.v1 import events_pb2
from infou_protos.realtime.v1 import realtime_pb2, realtime_pb2_grpc
from infou_realtime.main import SPEC as REALTIME_SPEC
from infou_realtime.settings import RealtimeSettings
from infou_session.main import SPEC as SESSION_SPEC
from infou_session.settings import SessionSettings

REDIS_DB = 10  # this module's own database on the shared Redis


@pytest.fixture(scope="module")
async def services(module_database_url: str, module_nats_url: str) -> AsyncIterator[dict[str, int]]:
    common: dict[str, Any] = {
        "environment": "test",
        "database_url": module_database_url,
        "nats_url": module_nats_url,
    }
    async with (
        running_service(CATALOG_SPEC, CatalogSettings(**common)) as catalog,
        running_service(
            GENERATION_API_SPEC,
            GenerationSettings(**common, catalog_addr=f"127.0.0.1:{catalog}"),
        ) as generation,
    ):
        session_settings = SessionSettings(
            **common,
            catalog_addr=f"127.0.0.1:{catalog}",
            generation_addr=f"127.0.0.1:{generation}",
        )
        async with running_service(SESSION_SPEC, session_settings) as session:
            realtime_settings = RealtimeSettings(
                **common,
                session_addr=f"127.0.0.1:{session}",
                heartbeat_seconds=0.5,
                watcher_queue_size=100_000,  # here the gateway's send timeout drops the slow
            )
            async with running_service(REALTIME_SPEC, realtime_settings) as realtime:
                yield {"catalog": catalog, "session": session, "realtime": realtime}


@contextlib.asynccontextmanager
async def serving(settings: GatewaySettings, port: int) -> AsyncIterator[str]:
    """The gateway served by uvicorn on `port`, in this event loop, with the WebSocket options
    of `infou_gateway.main` (protocol, message size, deflate); yields its address."""
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        ws=settings.ws_protocol,
        ws_max_size=settings.ws_max_message_bytes,
        ws_per_message_deflate=settings.ws_per_message_deflate,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


@pytest.fixture(scope="module")
async def gateway(
    services: dict[str, int], module_database_url: str, module_nats_url: str, redis_url: str
) -> AsyncIterator[str]:
    """The gateway on a free port, in this event loop; yields its address."""
    port = engines.free_port()
    settings = GatewaySettings(
        environment="test",
        database_url=module_database_url,
        nats_url=module_nats_url,
        redis_url=urlunsplit(urlsplit(redis_url)._replace(path=f"/{REDIS_DB}")),
        catalog_addr=f"127.0.0.1:{services['catalog']}",
        session_addr=f"127.0.0.1:{services['session']}",
        realtime_addr=f"127.0.0.1:{services['realtime']}",
        rate_limit_per_minute=0,
        ws_send_timeout_seconds=0.5,
    )
    async with serving(settings, port) as address:
        yield address


@pytest.fixture(scope="module")
async def api(gateway: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://{gateway}", timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
async def nc(module_nats_url: str) -> AsyncIterator[NatsClient]:
    client = await connect(module_nats_url, "gateway-ws-tests")
    await ensure_streams(client.jetstream())
    yield client
    await client.close()


@pytest.fixture(scope="module")
async def jobs(nc: NatsClient) -> AsyncIterator[JetStreamContext.PullSubscription]:
    sub = await nc.jetstream().pull_subscribe(
        "jobs.>",
        durable="gw-ws-test-worker",
        stream=JOBS_STREAM,
        config=ConsumerConfig(ack_wait=30),
    )
    yield sub
    await sub.unsubscribe()


@pytest.fixture(scope="module")
async def db(module_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(asyncpg_url(module_database_url))
    yield engine
    await engine.dispose()


async def new_session(api: httpx.AsyncClient) -> dict[str, Any]:
    topic = (await api.get("/main-topics/ai-ml")).json()
    reply = await api.post(
        "/sessions",
        json={
            "main_topic_id": topic["id"],
            "sub_topic_ids": [topic["sub_topics"][0]["id"]],
            "level": "beginner",
            "options": {"max_articles_per_subtopic": 2},
        },
    )
    assert reply.status_code == 201, reply.text
    body = dict(reply.json())
    body["ref"] = topic["sub_topics"][0]["id"]
    return body


async def take(
    sub: JetStreamContext.PullSubscription, subject: str, session_id: str, count: int
) -> list[Any]:
    kinds: dict[str, Any] = {
        "jobs.curriculum.generate": events_pb2.GenerateCurriculumJob,
        "jobs.article.generate": events_pb2.GenerateArticleJob,
    }
    found: list[Any] = []
    for _ in range(60):
        try:
            msgs = await sub.fetch(10, timeout=0.5)
        except (TimeoutError, NatsTimeoutError):
            msgs = []
        for msg in msgs:
            await msg.ack()
            if msg.subject == subject:
                job = kinds[subject].FromString(msg.data)
                if job.session_id == session_id:
                    found.append(job)
        if len(found) >= count:
            return found
    raise AssertionError(f"no {subject} for {session_id}")


async def generate(nc: NatsClient, jobs: Any, created: dict[str, Any]) -> None:
    """Plays the worker: a two-article curriculum, then both articles."""
    js = nc.jetstream()
    sid = created["session_id"]
    await take(jobs, "jobs.curriculum.generate", sid, 1)
    items = [
        events_pb2.PlannedArticle(
            title=t, summary="s", sub_topic_ref=created["ref"], key_concepts=["k"]
        )
        for t in ("하나", "둘")
    ]
    await publish(
        js,
        "events.generation.curriculum_generated",
        events_pb2.CurriculumGenerated(session_id=sid, title="t", items=items),
    )
    for job in await take(jobs, "jobs.article.generate", sid, 2):
        written = events_pb2.WrittenArticle(content="## 본문\n\n내용\n", word_count=300, title="x")
        await publish(
            js,
            "events.generation.article_generated",
            events_pb2.ArticleGenerated(session_id=sid, article_id=job.article_id, article=written),
        )


def ws_url(gateway: str, session_id: str) -> str:
    return f"ws://{gateway}/sessions/{session_id}/ws"


async def receive(ws: Any, until: str, timeout: float = 15.0) -> list[dict[str, Any]]:
    """Messages (heartbeats left out) up to and including the first of type `until`."""
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads(await ws.recv())
            if message["type"] == "heartbeat":
                continue
            seen.append(message)
            if message["type"] == until:
                return seen


async def test_the_snapshot_comes_first_then_every_event_until_complete(
    gateway: str, api: httpx.AsyncClient, nc: NatsClient, jobs: Any
) -> None:
    created = await new_session(api)
    sid = created["session_id"]
    headers = {"Authorization": f"Bearer {created['access_token']}"}
    async with websockets.connect(ws_url(gateway, sid), additional_headers=headers) as ws:
        snapshot = json.loads(await ws.recv())
        assert snapshot["type"] == "snapshot"
        assert snapshot["data"]["status"] == "initializing"
        assert snapshot["data"]["session_id"] == sid
        await generate(nc, jobs, created)
        messages = await receive(ws, "generation_complete")
    kinds = [m["type"] for m in messages]
    assert kinds.count("article_ready") == 2
    assert {m["data"]["article_id"] for m in messages if m["type"] == "article_ready"} == {
        f"{sid}_001",
        f"{sid}_002",
    }
    progress = [m["data"] for m in messages if m["type"] == "generation_progress"]
    assert progress[0]["status"] == "generating_articles"
    assert progress[0]["progress"]["total"] == 2
    assert progress[-1]["progress"] | {"estimated_remaining": None} == {
        "completed": 2,
        "total": 2,
        "failed": 0,
        "current_task": "모든 아티클 생성 완료",
        "estimated_remaining": None,
    }
    complete = messages[-1]["data"]
    assert complete["session_id"] == sid
    assert complete["total_articles"] == 2
    assert complete["ready_to_start"] is True
    assert complete["generation_time"]
    sequences = [m["sequence"] for m in messages]
    assert sequences == sorted(sequences)
    assert sequences[0] > snapshot["sequence"]

    # A client that connects late (or reconnects) starts from the current state.
    async with websockets.connect(ws_url(gateway, sid), additional_headers=headers) as ws:
        late = json.loads(await ws.recv())
    assert late["type"] == "snapshot"
    assert late["data"]["status"] == "ready"
    assert late["data"]["ready_to_start"] is True
    assert [a["status"] for a in late["data"]["articles"]] == ["ready", "ready"]


async def test_the_token_may_come_as_a_subprotocol(gateway: str, api: httpx.AsyncClient) -> None:
    created = await new_session(api)
    async with websockets.connect(
        ws_url(gateway, created["session_id"]),
        subprotocols=[Subprotocol("infou.v1"), Subprotocol(created["access_token"])],
    ) as ws:
        assert ws.subprotocol == "infou.v1"
        assert json.loads(await ws.recv())["type"] == "snapshot"
        await ws.send(json.dumps({"type": "ping"}))
        pong = await receive(ws, "pong")
        assert pong[-1]["type"] == "pong"


async def test_the_handshake_refuses_wrong_tokens_like_any_other_call(
    gateway: str, api: httpx.AsyncClient, db: AsyncEngine
) -> None:
    mine, theirs = await new_session(api), await new_session(api)
    url = ws_url(gateway, mine["session_id"])
    for kwargs, status in (
        ({}, 401),
        ({"additional_headers": {"Authorization": "Bearer st_" + "x" * 43}}, 401),
        ({"subprotocols": ["infou.v1"]}, 401),
        ({"additional_headers": {"Authorization": f"Bearer {theirs['access_token']}"}}, 404),
    ):
        with pytest.raises(InvalidStatus) as caught:
            async with websockets.connect(url, **kwargs):
                pass
        assert caught.value.response.status_code == status, kwargs
        body = json.loads(caught.value.response.body or b"{}")
        assert body["error"]["code"] in ("UNAUTHENTICATED", "NOT_FOUND")

    async with db.begin() as conn:
        await conn.execute(
            text("UPDATE session.learning_sessions SET expires_at = now() WHERE id = :id"),
            {"id": mine["session_id"]},
        )
    with pytest.raises(InvalidStatus) as caught:
        async with websockets.connect(
            url, additional_headers={"Authorization": f"Bearer {mine['access_token']}"}
        ):
            pass
    assert caught.value.response.status_code == 410


async def test_connections_are_recorded_with_who_and_why_they_ended(
    gateway: str, api: httpx.AsyncClient, db: AsyncEngine
) -> None:
    created = await new_session(api)
    sid = created["session_id"]
    async with websockets.connect(
        ws_url(gateway, sid),
        additional_headers={"Authorization": f"Bearer {created['access_token']}"},
        user_agent_header="infou-test-client/1.0",
    ) as ws:
        await ws.recv()
        await _heartbeats(ws, 2)
    for _ in range(100):
        async with db.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT client_ip, user_agent, gateway_id, is_active, disconnect_reason,"
                        " connected_at, last_ping_at FROM realtime.websocket_connections"
                        " WHERE session_id = :sid"
                    ),
                    {"sid": sid},
                )
            ).one()
        if not row.is_active:
            break
        await asyncio.sleep(0.05)
    # Stored encrypted (personal data at rest); the keyring reads them back.
    assert row.client_ip.startswith("enc1.")
    assert keyring().decrypt(row.client_ip) == b"127.0.0.1"
    assert keyring().decrypt(row.user_agent) == b"infou-test-client/1.0"
    assert row.gateway_id
    assert row.is_active is False
    assert row.disconnect_reason == "client_closed"
    assert row.last_ping_at > row.connected_at  # heartbeats reached the client


async def _heartbeats(ws: Any, count: int) -> None:
    async with asyncio.timeout(10):
        while count:
            if json.loads(await ws.recv())["type"] == "heartbeat":
                count -= 1
    await asyncio.sleep(0.2)  # the touches are recorded in the background


async def test_a_stuck_client_is_dropped_and_another_gets_everything(
    gateway: str, api: httpx.AsyncClient, nc: NatsClient, db: AsyncEngine
) -> None:
    created = await new_session(api)
    sid = created["session_id"]
    headers = {"Authorization": f"Bearer {created['access_token']}"}
    total = 160
    pad = "x" * 100_000
    _stuck_reader, stuck = await stuck_client(gateway, sid, created["access_token"])
    async with websockets.connect(
        ws_url(gateway, sid), additional_headers=headers, max_size=None
    ) as reader:
        first = json.loads(await reader.recv())
        got: list[int] = []

        async def read_all() -> None:
            while len(got) < total:
                message = json.loads(await reader.recv())
                if message["type"] == "article_ready":
                    got.append(message["sequence"])

        reading = asyncio.create_task(read_all())
        for n in range(total):
            event = events_pb2.SessionProgress(
                session_id=sid,
                type="article_ready",
                data_json=json.dumps({"article_id": f"a{n}", "pad": pad}),
                sequence=first["sequence"] + 1 + n,
            )
            await nc.publish(f"progress.session.{sid}", event.SerializeToString())
            if n % 8 == 7:
                await nc.flush()
                await asyncio.sleep(0.01)
        await asyncio.wait_for(reading, 60)
        assert got == [first["sequence"] + 1 + n for n in range(total)]
        # The stuck one is dropped while the reader is still connected.
        reasons = await eventually_reasons(db, sid, lambda r: r[0] == "slow_client")
        assert reasons == ["slow_client", None]
    stuck.close()
    reasons = await eventually_reasons(db, sid, all)
    assert reasons == ["slow_client", "client_closed"]


async def eventually_reasons(db: AsyncEngine, session_id: str, done: Any) -> list[str | None]:
    """The disconnect reasons of the session's connections, in connection order, once `done`."""
    for _ in range(200):
        async with db.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT disconnect_reason FROM realtime.websocket_connections"
                    " WHERE session_id = :sid ORDER BY id"
                ),
                {"sid": session_id},
            )
            reasons = list(rows.scalars().all())
        if reasons and done(reasons):
            break
        await asyncio.sleep(0.05)
    return reasons


async def stuck_client(
    gateway: str, session_id: str, token: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A WebSocket client that completes the handshake, then never reads again."""
    host, port = gateway.split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /sessions/{session_id}/ws HTTP/1.1\r\nHost: {gateway}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Authorization: Bearer {token}\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    status = await reader.readuntil(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 101"), status
    writer.transport.pause_reading()  # type: ignore[attr-defined]
    return reader, writer  # both kept: a collected reader would drop the connection


async def test_an_overlong_session_id_is_refused(gateway: str) -> None:
    with pytest.raises(InvalidStatus) as caught:
        async with websockets.connect(ws_url(gateway, "s" * 65)):
            pass
    assert caught.value.response.status_code == 422


async def read_until_closed(ws: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            await ws.recv()


async def test_a_draining_gateway_sends_watchers_away_and_stops(
    services: dict[str, int],
    module_database_url: str,
    module_nats_url: str,
    redis_url: str,
    api: httpx.AsyncClient,
) -> None:
    """SIGTERM: every WebSocket closes with 1001 (going away), then the process exits cleanly."""
    port = engines.free_port()
    env = {
        **os.environ,
        "INFOU_ENVIRONMENT": "test",
        "INFOU_HOST": "127.0.0.1",
        "INFOU_PORT": str(port),
        "INFOU_DATABASE_URL": module_database_url,
        "INFOU_NATS_URL": module_nats_url,
        "INFOU_REDIS_URL": urlunsplit(urlsplit(redis_url)._replace(path=f"/{REDIS_DB}")),
        "INFOU_CATALOG_ADDR": f"127.0.0.1:{services['catalog']}",
        "INFOU_SESSION_ADDR": f"127.0.0.1:{services['session']}",
        "INFOU_REALTIME_ADDR": f"127.0.0.1:{services['realtime']}",
        "INFOU_RATE_LIMIT_PER_MINUTE": "0",
    }
    gateway = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "infou_gateway", env=env, stdout=asyncio.subprocess.DEVNULL
    )
    base = f"127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=f"http://{base}", timeout=10) as client:
            await wait_ready(client)
        created = await new_session(api)  # through the module's gateway: the same services
        headers = {"Authorization": f"Bearer {created['access_token']}"}
        async with websockets.connect(
            ws_url(base, created["session_id"]), additional_headers=headers
        ) as ws:
            assert json.loads(await ws.recv())["type"] == "snapshot"
            gateway.send_signal(signal.SIGTERM)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await read_until_closed(ws)
        # uvicorn re-raises the captured SIGTERM once it has shut down gracefully.
        assert await asyncio.wait_for(gateway.wait(), 30) in (0, -signal.SIGTERM)
    finally:
        if gateway.returncode is None:
            gateway.kill()
            await gateway.wait()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1001


async def wait_ready(client: httpx.AsyncClient, timeout: float = 60.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            try:
                if (await client.get("/ready")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)


async def test_a_sixth_websocket_on_one_token_is_refused_with_429(
    gateway: str, api: httpx.AsyncClient
) -> None:
    created = await new_session(api)
    url = ws_url(gateway, created["session_id"])
    headers = {"Authorization": f"Bearer {created['access_token']}"}
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(5):  # INFOU_WS_MAX_PER_SESSION
            ws = await stack.enter_async_context(
                websockets.connect(url, additional_headers=headers)
            )
            await receive(ws, "snapshot")
        with pytest.raises(InvalidStatus) as caught:
            async with websockets.connect(url, additional_headers=headers):
                pass
        assert caught.value.response.status_code == 429
        body = json.loads(caught.value.response.body or b"{}")
        assert body["error"]["code"] == "TOO_MANY_CONNECTIONS"
    # Closed connections give their slots back (once the server has seen them close).
    codes = []
    for _ in range(50):
        try:
            async with websockets.connect(url, additional_headers=headers) as ws:
                await receive(ws, "snapshot")
                break
        except InvalidStatus as exc:
            codes.append(exc.response.status_code)
            await asyncio.sleep(0.1)
    else:
        raise AssertionError("the slots were never given back")
    assert set(codes) <= {429}


@pytest.fixture(scope="module")
async def roomy_gateway(
    services: dict[str, int], module_database_url: str, module_nats_url: str, redis_url: str
) -> AsyncIterator[str]:
    """A second gateway replica whose limits let many WebSockets watch one session."""
    settings = roomy_settings(services, module_database_url, module_nats_url, redis_url)
    async with serving(settings, engines.free_port()) as address:
        yield address


@pytest.fixture(scope="module")
async def deflating_gateway(
    services: dict[str, int], module_database_url: str, module_nats_url: str, redis_url: str
) -> AsyncIterator[str]:
    """A replica with permessage-deflate on: frames are compressed per socket, so every one goes
    through the ASGI send, never written by the feed."""
    settings = roomy_settings(services, module_database_url, module_nats_url, redis_url)
    settings = settings.model_copy(update={"ws_per_message_deflate": True})
    async with serving(settings, engines.free_port()) as address:
        yield address


def roomy_settings(
    services: dict[str, int], database_url: str, nats_url: str, redis_url: str
) -> GatewaySettings:
    return GatewaySettings(
        environment="test",
        database_url=database_url,
        nats_url=nats_url,
        redis_url=urlunsplit(urlsplit(redis_url)._replace(path=f"/{REDIS_DB}")),
        catalog_addr=f"127.0.0.1:{services['catalog']}",
        session_addr=f"127.0.0.1:{services['session']}",
        realtime_addr=f"127.0.0.1:{services['realtime']}",
        rate_limit_per_minute=0,
        ws_max_per_session=100,
        ws_max_per_client=200,
    )


@pytest.fixture(scope="module")
async def realtime(
    services: dict[str, int],
) -> AsyncIterator[realtime_pb2_grpc.RealtimeServiceAsyncStub]:
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{services['realtime']}")
    yield realtime_pb2_grpc.RealtimeServiceStub(channel)
    await channel.close(grace=None)


async def watch_streams(realtime: realtime_pb2_grpc.RealtimeServiceAsyncStub, sid: str) -> int:
    stats = await realtime.GetConnectionStats(
        realtime_pb2.GetConnectionStatsRequest(session_id=sid)
    )
    return stats.watch_streams


def frames_handed(path: str) -> float:
    """infou_gateway_ws_frames_total{path} of the gateways in this process."""
    value = REGISTRY.get_sample_value("infou_gateway_ws_frames_total", {"path": path})
    return value or 0.0


async def many_watchers_get_every_event_once_in_order(
    gateway: str,
    api: httpx.AsyncClient,
    nc: NatsClient,
    realtime: realtime_pb2_grpc.RealtimeServiceAsyncStub,
    *,
    watchers: int,
    events: int,
    deflate: bool,
) -> None:
    created = await new_session(api)
    sid = created["session_id"]
    headers = {"Authorization": f"Bearer {created['access_token']}"}
    async with contextlib.AsyncExitStack() as stack:
        sockets = [
            await stack.enter_async_context(
                websockets.connect(ws_url(gateway, sid), additional_headers=headers)
            )
            for _ in range(watchers)
        ]
        assert {bool(ws.protocol.extensions) for ws in sockets} == {deflate}
        snapshots = [json.loads(await ws.recv()) for ws in sockets]
        assert {s["type"] for s in snapshots} == {"snapshot"}
        # One Watch stream for this session on this gateway, whatever the number of watchers.
        assert await watch_streams(realtime, sid) == 1

        base = max(s["sequence"] for s in snapshots)
        for n in range(events):
            event = events_pb2.SessionProgress(
                session_id=sid,
                type="article_ready",
                data_json=json.dumps({"article_id": f"a{n}"}),
                sequence=base + 1 + n,
            )
            await nc.publish(f"progress.session.{sid}", event.SerializeToString())
        notice = events_pb2.SessionProgress(
            session_id=sid, type="error", data_json=json.dumps({"error_code": "X"}), sequence=0
        )
        await nc.publish(f"progress.session.{sid}", notice.SerializeToString())
        await nc.flush()
        for ws in sockets:
            seen = await receive(ws, "error")
            assert [m["data"]["article_id"] for m in seen[:-1]] == [f"a{n}" for n in range(events)]
            assert [m["sequence"] for m in seen[:-1]] == [base + 1 + n for n in range(events)]
            assert seen[-1]["data"] == {"error_code": "X"}
        assert await watch_streams(realtime, sid) == 1
    # The last watcher leaving closes the stream.
    for _ in range(100):
        if await watch_streams(realtime, sid) == 0:
            break
        await asyncio.sleep(0.05)
    assert await watch_streams(realtime, sid) == 0


async def test_many_watchers_share_one_watch_stream_and_get_every_event_once_in_order(
    roomy_gateway: str,
    api: httpx.AsyncClient,
    nc: NatsClient,
    realtime: realtime_pb2_grpc.RealtimeServiceAsyncStub,
) -> None:
    watchers, events = 25, 12
    direct = frames_handed("direct")
    await many_watchers_get_every_event_once_in_order(
        roomy_gateway, api, nc, realtime, watchers=watchers, events=events, deflate=False
    )
    # Every watcher was waiting, caught up, when each message came: the feed wrote each frame
    # to every socket itself (heartbeats come on top).
    assert frames_handed("direct") - direct >= watchers * (events + 1)


async def test_with_deflate_every_frame_goes_through_the_asgi_send(
    deflating_gateway: str,
    api: httpx.AsyncClient,
    nc: NatsClient,
    realtime: realtime_pb2_grpc.RealtimeServiceAsyncStub,
) -> None:
    """A compressed connection's frames differ per socket: the feed wakes each watcher to send
    through uvicorn instead of writing shared bytes, and every event still arrives in order."""
    watchers, events = 10, 6
    woken = frames_handed("woken")
    await many_watchers_get_every_event_once_in_order(
        deflating_gateway, api, nc, realtime, watchers=watchers, events=events, deflate=True
    )
    assert frames_handed("woken") - woken >= watchers * (events + 1)


async def test_a_watcher_joining_an_open_stream_starts_from_the_current_state(
    roomy_gateway: str,
    api: httpx.AsyncClient,
    nc: NatsClient,
    jobs: Any,
    realtime: realtime_pb2_grpc.RealtimeServiceAsyncStub,
) -> None:
    created = await new_session(api)
    sid = created["session_id"]
    headers = {"Authorization": f"Bearer {created['access_token']}"}
    url = ws_url(roomy_gateway, sid)
    async with websockets.connect(url, additional_headers=headers) as first:
        assert json.loads(await first.recv())["data"]["status"] == "initializing"
        await generate(nc, jobs, created)
        await receive(first, "generation_complete")
        # The stream stays open for `first`; the newcomer still gets today's state first.
        async with websockets.connect(url, additional_headers=headers) as late:
            snapshot = json.loads(await late.recv())
            assert snapshot["type"] == "snapshot"
            assert snapshot["data"]["status"] == "ready"
            assert [a["status"] for a in snapshot["data"]["articles"]] == ["ready", "ready"]
            assert await watch_streams(realtime, sid) == 1
            await late.send(json.dumps({"type": "ping"}))
            assert (await receive(late, "pong"))[-1]["data"] == {"session_id": sid}


async def test_a_session_already_watched_still_refuses_wrong_tokens(
    gateway: str, api: httpx.AsyncClient, nc: NatsClient
) -> None:
    """The shared stream is no way in: every handshake is checked on its own."""
    mine, theirs = await new_session(api), await new_session(api)
    sid = mine["session_id"]
    url = ws_url(gateway, sid)
    headers = {"Authorization": f"Bearer {mine['access_token']}"}
    wrong: list[tuple[dict[str, str], int]] = [
        ({}, 401),
        ({"Authorization": "Bearer st_" + "y" * 43}, 401),
        ({"Authorization": f"Bearer {theirs['access_token']}"}, 404),
    ]
    async with websockets.connect(url, additional_headers=headers) as watching:
        snapshot = json.loads(await watching.recv())
        for wrong_headers, status in wrong:
            with pytest.raises(InvalidStatus) as caught:
                async with websockets.connect(url, additional_headers=wrong_headers):
                    pass
            assert caught.value.response.status_code == status, wrong_headers
        event = events_pb2.SessionProgress(
            session_id=sid,
            type="article_ready",
            data_json=json.dumps({"article_id": "a1"}),
            sequence=snapshot["sequence"] + 1,
        )
        await nc.publish(f"progress.session.{sid}", event.SerializeToString())
        seen = await receive(watching, "article_ready")
        assert seen[-1]["data"] == {"article_id": "a1"}
