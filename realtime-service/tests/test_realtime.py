"""realtime-service: Watch streams start from session-service's snapshot and carry every later
progress message; slow watchers are dropped without holding up others; the connection registry.

catalog-, session- and realtime-service run in-process on a database and NATS of this module;
progress messages are published on core NATS as session-service and generation workers do.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from nats.aio.client import Client as NatsClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from infou_catalog.main import SPEC as CATALOG_SPEC
from infou_catalog.settings import CatalogSettings
from infou_devtools.testing import running_service
from infou_generation.main import API_SPEC as GENERATION_API_SPEC
from infou_generation.settings import GenerationSettings
from infou_libs.crypto import keyring
from infou_libs.db import asyncpg_url
from infou_libs.grpc_client import domain_error_from
from infou_libs.messaging import connect, ensure_streams
from infou_protos.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from infou_protos.events.v1 import events_pb2
from infou_protos.realtime.v1 import realtime_pb2, realtime_pb2_grpc
from infou_protos.session.v1 import session_pb2, session_pb2_grpc
from infou_realtime.main import SPEC as REALTIME_SPEC
from infou_realtime.settings import RealtimeSettings
from infou_session.main import SPEC as SESSION_SPEC
from infou_session.settings import SessionSettings

QUEUE = 8


@pytest.fixture(scope="module")
async def ports(module_database_url: str, module_nats_url: str) -> AsyncIterator[dict[str, int]]:
    common: dict[str, Any] = {
        "environment": "test",
        "database_url": module_database_url,
        "nats_url": module_nats_url,
    }
    # Session creation is admitted by generation-service (the LLM budget): its gRPC API runs.
    generation_settings = GenerationSettings(**common, catalog_addr="127.0.0.1:1")
    async with (
        running_service(CATALOG_SPEC, CatalogSettings(**common)) as catalog,
        running_service(GENERATION_API_SPEC, generation_settings) as generation,
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
                heartbeat_seconds=0.3,
                watcher_queue_size=QUEUE,
            )
            async with running_service(REALTIME_SPEC, realtime_settings) as realtime:
                yield {"catalog": catalog, "session": session, "realtime": realtime}


@pytest.fixture(scope="module")
async def channels(ports: dict[str, int]) -> AsyncIterator[dict[str, grpc.aio.Channel]]:
    opened = {name: grpc.aio.insecure_channel(f"127.0.0.1:{port}") for name, port in ports.items()}
    yield opened
    for channel in opened.values():
        await channel.close(grace=None)


@pytest.fixture(scope="module")
def realtime(channels: dict[str, grpc.aio.Channel]) -> realtime_pb2_grpc.RealtimeServiceAsyncStub:
    return realtime_pb2_grpc.RealtimeServiceStub(channels["realtime"])


@pytest.fixture(scope="module")
def sessions(channels: dict[str, grpc.aio.Channel]) -> session_pb2_grpc.SessionServiceAsyncStub:
    return session_pb2_grpc.SessionServiceStub(channels["session"])


@pytest.fixture(scope="module")
async def nc(module_nats_url: str) -> AsyncIterator[NatsClient]:
    client = await connect(module_nats_url, "realtime-tests")
    await ensure_streams(client.jetstream())
    yield client
    await client.close()


@pytest.fixture(scope="module")
async def db(module_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(asyncpg_url(module_database_url))
    yield engine
    await engine.dispose()


@pytest.fixture(scope="module")
async def curated(channels: dict[str, grpc.aio.Channel]) -> tuple[int, int]:
    catalog = catalog_pb2_grpc.CatalogServiceStub(channels["catalog"])
    topic = await catalog.GetMainTopic(catalog_pb2.GetMainTopicRequest(slug="ai-ml"))
    return topic.topic.id, topic.sub_topics[0].id


async def new_session(
    sessions: session_pb2_grpc.SessionServiceAsyncStub, curated: tuple[int, int]
) -> session_pb2.CreateSessionResponse:
    return await sessions.CreateSession(
        session_pb2.CreateSessionRequest(
            main_topic_id=curated[0],
            sub_topics=[session_pb2.SubTopicRef(type="curated", id=curated[1])],
            level="beginner",
        )
    )


async def progress(nc: NatsClient, session_id: str, kind: str, sequence: int, **data: Any) -> None:
    message = events_pb2.SessionProgress(
        session_id=session_id, type=kind, data_json=json.dumps(data), sequence=sequence
    )
    await nc.publish(f"progress.session.{session_id}", message.SerializeToString())
    await nc.flush()


async def next_message(stream: Any, skip_heartbeats: bool = True) -> realtime_pb2.WatchMessage:
    while True:
        message = await asyncio.wait_for(stream.read(), 10)
        assert message is not grpc.aio.EOF  # type: ignore[attr-defined]  # missing from the stubs
        if not (skip_heartbeats and message.type == "heartbeat"):
            return message  # type: ignore[no-any-return]


def watch(realtime: realtime_pb2_grpc.RealtimeServiceAsyncStub, session_id: str) -> Any:
    return realtime.Watch(
        realtime_pb2.WatchRequest(session_id=session_id, connection_id=f"c_{uuid.uuid4().hex}")
    )


async def test_a_watch_starts_with_the_snapshot_then_carries_what_follows(
    realtime: realtime_pb2_grpc.RealtimeServiceAsyncStub,
    sessions: session_pb2_grpc.SessionServiceAsyncStub,
    nc: NatsClient,
    curated: tuple[int, int],
) -> None:
    created = await new_session(sessions, curated)
    sid = created.session_id
    stream = watch(realtime, sid)
    snapshot = await next_message(stream)
    assert snapshot.type == "snapshot"
    data = json.loads(snapshot.data_json)
    assert data["session_id"] == sid
    assert data["status"] == "initializing"
    assert data["stage"] == "generating_curriculum"
    assert data["curriculum_ready"] is False
    assert data["articles"] == []
    assert snapshot.sequence >= 1  # creation was announced

    # Already in the snapshot: skipped. Newer: passed. Notices (sequence 0): always passed.
    await progress(nc, sid, "generation_progress", snapshot.sequence, marker="old")
    await progress(nc, sid, "error", 0, error_code="LLM_RATE_LIMIT", auto_retry=True)
    await progress(nc, sid, "generation_progress", snapshot.sequence + 2, marker="new")
    await progress(nc, sid, "generation_progress", snapshot.sequence + 1, marker="stale")
    await progress(nc, sid, "article_ready", snapshot.sequence + 1, article_id="a1")
    notice = await next_message(stream)
    assert (notice.type, notice.sequence) == ("error", 0)
    assert json.loads(notice.data_json)["error_code"] == "LLM_RATE_LIMIT"
    newer = await next_message(stream)
    assert json.loads(newer.data_json)["marker"] == "new"
    # A progress count older than one already shown is not shown; other kinds always are.
    ready = await next_message(stream)
    assert (ready.type, json.loads(ready.data_json)["article_id"]) == ("article_ready", "a1")
    stream.cancel()


async def test_heartbeats_keep_a_quiet_stream_alive(
    realtime: realtime_pb2_grpc.RealtimeServiceAsyncStub,
    sessions: session_pb2_grpc.SessionServiceAsyncStub,
    curated: tuple[int, int],
) -> None:
    created = await new_session(sessions, curated)
    stream = watch(realtime, created.session_id)
    assert (await next_message(stream)).type == "snapshot"
    beat = await next_message(stream, skip_heartbeats=False)
    assert beat.type == "heartbeat"
    assert beat.sequence == 0
    stream.cancel()


async def test_a_stuck_watcher_is_dropped_and_the_others_get_everything(
    realtime: realtime_pb2_grpc.RealtimeServiceAsyncStub,
    sessions: session_pb2_grpc.SessionServiceAsyncStub,
    nc: NatsClient,
    curated: tuple[int, int],
) -> None:
    created = await new_session(sessions, curated)
    sid = created.session_id
    reader = watch(realtime, sid)
    stuck = watch(realtime, sid)
    first = await next_message(reader)
    assert (await next_message(stuck)).type == "snapshot"
    padding = "x" * 64_000  # fills the stuck stream's transport window quickly
    total = 150
    received: list[int] = []

    async def read_all() -> None:
        while len(received) < total:
            message = await next_message(reader)
            received.append(message.sequence)

    reading = asyncio.create_task(read_all())
    for n in range(total):
        await progress(nc, sid, "article_ready", first.sequence + 1 + n, pad=padding)
        if n % 4 == 3:
            await asyncio.sleep(0.02)
    await asyncio.wait_for(reading, 30)
    assert received == [first.sequence + 1 + n for n in range(total)]

    async def drain_stuck() -> None:
        for _ in range(total + 1):
            await next_message(stuck)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await drain_stuck()
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert domain_error_from(caught.value).code == "SLOW_CONSUMER"
    reader.cancel()


async def test_watching_an_unknown_session_is_not_found(
    realtime: realtime_pb2_grpc.RealtimeServiceAsyncStub,
) -> None:
    stream = watch(realtime, "sess_nope")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await next_message(stream)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_connections_are_registered_touched_and_closed(
    realtime: realtime_pb2_grpc.RealtimeServiceAsyncStub, db: AsyncEngine
) -> None:
    connection_id = f"ws_{uuid.uuid4().hex}"
    before = await realtime.GetConnectionStats(realtime_pb2.GetConnectionStatsRequest())
    await realtime.RegisterConnection(
        realtime_pb2.RegisterConnectionRequest(
            connection_id=connection_id,
            session_id="sess_abc",
            client_ip="203.0.113.7",
            user_agent="pytest-ws/1.0",
            gateway_id="gw-1",
        )
    )
    async with db.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT session_id, client_ip, user_agent, gateway_id, is_active,"
                    " connected_at, last_ping_at FROM realtime.websocket_connections"
                    " WHERE connection_id = :id"
                ),
                {"id": connection_id},
            )
        ).one()
    assert (row.session_id, row.gateway_id, row.is_active) == ("sess_abc", "gw-1", True)
    # The IP and user agent are personal data: stored encrypted, read back through the keyring.
    assert "203.0.113.7" not in row.client_ip
    assert keyring().decrypt(row.client_ip) == b"203.0.113.7"
    assert keyring().decrypt(row.user_agent) == b"pytest-ws/1.0"
    first_ping = row.last_ping_at
    during = await realtime.GetConnectionStats(realtime_pb2.GetConnectionStatsRequest())
    assert during.active_connections == before.active_connections + 1

    await asyncio.sleep(0.05)
    await realtime.TouchConnection(realtime_pb2.TouchConnectionRequest(connection_id=connection_id))
    await realtime.CloseConnection(
        realtime_pb2.CloseConnectionRequest(
            connection_id=connection_id, disconnect_reason="slow_client"
        )
    )
    async with db.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT is_active, disconnect_reason, last_ping_at"
                    " FROM realtime.websocket_connections WHERE connection_id = :id"
                ),
                {"id": connection_id},
            )
        ).one()
    assert row.is_active is False
    assert row.disconnect_reason == "slow_client"
    assert row.last_ping_at > first_ping
    after = await realtime.GetConnectionStats(realtime_pb2.GetConnectionStatsRequest())
    assert after.active_connections == before.active_connections
    assert after.total_connections == before.total_connections + 1


async def test_bad_connection_ids_name_the_field(
    realtime: realtime_pb2_grpc.RealtimeServiceAsyncStub,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await realtime.RegisterConnection(
            realtime_pb2.RegisterConnectionRequest(connection_id="", session_id="s")
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await realtime.TouchConnection(realtime_pb2.TouchConnectionRequest(connection_id="x" * 101))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def _connection_rows(db: AsyncEngine, ids: list[str]) -> dict[str, Any]:
    async with db.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT connection_id, session_id, client_ip, gateway_id, is_active,"
                " disconnect_reason, connected_at, last_ping_at"
                " FROM realtime.websocket_connections WHERE connection_id = ANY(:ids)"
            ),
            {"ids": ids},
        )
        return {row.connection_id: row for row in rows}


def _opened(connection_id: str, ip: str = "198.51.100.4") -> realtime_pb2.RegisterConnectionRequest:
    return realtime_pb2.RegisterConnectionRequest(
        connection_id=connection_id,
        session_id="sess_batch",
        client_ip=ip,
        user_agent="pytest-ws/1.0",
        gateway_id="gw-batch",
    )


async def test_a_gateways_batch_of_records_opens_then_touches_then_closes(
    realtime: realtime_pb2_grpc.RealtimeServiceAsyncStub, db: AsyncEngine
) -> None:
    a, b, c = (f"ws_{uuid.uuid4().hex}" for _ in range(3))
    before = await realtime.GetConnectionStats(realtime_pb2.GetConnectionStatsRequest())
    await realtime.RecordConnections(
        realtime_pb2.RecordConnectionsRequest(opened=[_opened(a), _opened(b)])
    )
    rows = await _connection_rows(db, [a, b])
    assert {row.is_active for row in rows.values()} == {True}
    assert {row.gateway_id for row in rows.values()} == {"gw-batch"}
    # Personal data stays encrypted when it comes in a batch too.
    assert "198.51.100.4" not in rows[a].client_ip
    assert keyring().decrypt(rows[a].client_ip) == b"198.51.100.4"
    during = await realtime.GetConnectionStats(realtime_pb2.GetConnectionStatsRequest())
    assert during.active_connections == before.active_connections + 2

    # One call may carry a connection's open, heartbeat and close: applied in that order.
    await realtime.RecordConnections(
        realtime_pb2.RecordConnectionsRequest(
            opened=[_opened(c)],
            touched=[a, c],
            closed=[
                realtime_pb2.CloseConnectionRequest(
                    connection_id=b, disconnect_reason="slow_client"
                ),
                realtime_pb2.CloseConnectionRequest(connection_id=c, disconnect_reason=""),
            ],
        )
    )
    rows = await _connection_rows(db, [a, b, c])
    assert (rows[a].is_active, rows[a].disconnect_reason) == (True, None)
    assert rows[a].last_ping_at > rows[a].connected_at
    assert (rows[b].is_active, rows[b].disconnect_reason) == (False, "slow_client")
    assert (rows[c].is_active, rows[c].disconnect_reason) == (False, "closed")
    assert rows[c].last_ping_at > rows[c].connected_at
    after = await realtime.GetConnectionStats(realtime_pb2.GetConnectionStatsRequest())
    assert after.active_connections == before.active_connections + 1
    assert after.total_connections == before.total_connections + 3

    # A batch sent again (a retried flush) changes nothing: no duplicate, no reopened row.
    await realtime.RecordConnections(
        realtime_pb2.RecordConnectionsRequest(opened=[_opened(b)], closed=[])
    )
    rows = await _connection_rows(db, [b])
    assert (rows[b].is_active, rows[b].disconnect_reason) == (False, "slow_client")


async def test_a_bad_batch_is_refused_naming_the_field_and_writes_nothing(
    realtime: realtime_pb2_grpc.RealtimeServiceAsyncStub, db: AsyncEngine
) -> None:
    good = f"ws_{uuid.uuid4().hex}"
    bad_batches = [
        realtime_pb2.RecordConnectionsRequest(opened=[_opened(good), _opened("")]),
        realtime_pb2.RecordConnectionsRequest(opened=[_opened(good)], touched=["x" * 101]),
        realtime_pb2.RecordConnectionsRequest(
            opened=[_opened(good)],
            touched=[f"ws_{n}" for n in range(5001)],  # more than one call may carry
        ),
    ]
    for batch in bad_batches:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await realtime.RecordConnections(batch)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert domain_error_from(caught.value).field in {"connection_id", "opened"}
    assert await _connection_rows(db, [good]) == {}


async def test_watch_streams_are_counted_per_session_and_gone_once_cancelled(
    realtime: realtime_pb2_grpc.RealtimeServiceAsyncStub,
    sessions: session_pb2_grpc.SessionServiceAsyncStub,
    curated: tuple[int, int],
) -> None:
    one = (await new_session(sessions, curated)).session_id
    other = (await new_session(sessions, curated)).session_id

    async def streams(session_id: str) -> int:
        request = realtime_pb2.GetConnectionStatsRequest(session_id=session_id)
        return (await realtime.GetConnectionStats(request)).watch_streams

    watching = [watch(realtime, one), watch(realtime, one), watch(realtime, other)]
    for stream in watching:
        assert (await next_message(stream)).type == "snapshot"  # the stream is open
    assert await streams(one) == 2
    assert await streams(other) == 1
    everywhere = (
        await realtime.GetConnectionStats(realtime_pb2.GetConnectionStatsRequest())
    ).watch_streams
    assert everywhere >= 3
    for stream in watching:
        stream.cancel()
    for _ in range(200):  # the server sees the cancellations shortly after
        if await streams(one) == 0 and await streams(other) == 0:
            break
        await asyncio.sleep(0.05)
    assert (await streams(one), await streams(other)) == (0, 0)


async def test_a_batch_of_records_opens_touches_and_closes_in_one_call(
    realtime: realtime_pb2_grpc.RealtimeServiceAsyncStub, db: AsyncEngine
) -> None:
    staying, leaving = f"ws_{uuid.uuid4().hex}", f"ws_{uuid.uuid4().hex}"
    opened = [
        realtime_pb2.RegisterConnectionRequest(
            connection_id=cid,
            session_id="sess_batch",
            client_ip="198.51.100.9",
            user_agent="batch/1.0",
            gateway_id="gw-2",
        )
        for cid in (staying, leaving)
    ]
    await realtime.RecordConnections(
        realtime_pb2.RecordConnectionsRequest(
            opened=opened,
            touched=[staying],
            closed=[
                realtime_pb2.CloseConnectionRequest(
                    connection_id=leaving, disconnect_reason="client_closed"
                )
            ],
        )
    )
    async with db.connect() as conn:
        rows = {
            row.connection_id: row
            for row in await conn.execute(
                text(
                    "SELECT connection_id, client_ip, is_active, disconnect_reason, connected_at,"
                    " last_ping_at FROM realtime.websocket_connections"
                    " WHERE connection_id IN (:a, :b)"
                ),
                {"a": staying, "b": leaving},
            )
        }
    assert rows[staying].is_active is True
    assert rows[staying].last_ping_at > rows[staying].connected_at
    assert keyring().decrypt(rows[staying].client_ip) == b"198.51.100.9"
    assert (rows[leaving].is_active, rows[leaving].disconnect_reason) == (False, "client_closed")

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await realtime.RecordConnections(realtime_pb2.RecordConnectionsRequest(touched=["x" * 101]))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
