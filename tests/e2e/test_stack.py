"""The walking skeleton through every service, driven over the public HTTP API."""

from __future__ import annotations

import asyncio
import shutil
import signal
import sys
from pathlib import Path

import httpx
import yaml

from infou_catalog.seed import SEED_DIR
from infou_devtools.stack import Stack

LEVEL_CODES = ["absolute_beginner", "beginner", "intermediate", "advanced", "expert"]


async def test_health_reports_every_engine_and_service(api: httpx.AsyncClient) -> None:
    reply = await api.get("/health")
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["status"] == "healthy"
    assert body["version"] == "2.0.0"
    services = body["services"]
    for engine in ("database", "redis", "nats"):
        assert services[engine] == "connected"
    for name in ("catalog", "session", "generation", "feedback", "realtime"):
        assert services[f"{name}_service"] == "serving"
    assert services["llm_providers"] == ["offline"]
    assert services["celery"] == "active_workers_1"
    metrics = body["metrics"]
    assert metrics["avg_response_time"].endswith("ms")
    assert metrics["active_sessions"] == 0
    assert metrics["generation_queue"] == 0
    assert body["degraded"] == []


async def test_levels_come_from_the_catalog_database(api: httpx.AsyncClient) -> None:
    reply = await api.get("/levels")
    assert reply.status_code == 200
    levels = reply.json()["levels"]
    assert [lv["code"] for lv in levels] == LEVEL_CODES
    assert [lv["order"] for lv in levels] == [1, 2, 3, 4, 5]
    first = levels[0]
    assert first["name"] == "완전 초심자"
    assert set(first) == {
        "code",
        "name",
        "description",
        "target_audience",
        "characteristics",
        "estimated_hours_per_week",
        "order",
    }
    assert first["characteristics"] == ["용어 정의", "비유적 설명", "기초 개념"]


async def test_openapi_docs_are_served(api: httpx.AsyncClient) -> None:
    assert (await api.get("/docs")).status_code == 200
    paths = (await api.get("/openapi.json")).json()["paths"]
    assert {"/health", "/levels"} <= set(paths)


async def test_unknown_path_is_a_json_404(api: httpx.AsyncClient) -> None:
    reply = await api.get("/no-such-thing")
    assert reply.status_code == 404
    assert reply.json()["error"]["code"] == "NOT_FOUND"


async def _seed(stack: Stack, seed_dir: Path) -> None:
    env = stack.service_env() | {"INFOU_CATALOG_SEED_DIR": str(seed_dir)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "infou_catalog",
        "seed",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()


async def _levels_name(api: httpx.AsyncClient, code: str) -> str:
    levels = (await api.get("/levels")).json()["levels"]
    name: str = next(lv["name"] for lv in levels if lv["code"] == code)
    return name


async def test_catalog_change_reaches_the_gateway_through_outbox_and_jetstream(
    stack: Stack, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    """catalog-service writes CatalogChanged to its outbox; the relay publishes it to JetStream;
    the gateway's durable consumer drops the cached /levels. The cache TTL is an hour, so only
    the event can explain a fresh answer within seconds."""
    assert await _levels_name(api, "beginner") == "초급자"  # now cached
    changed = tmp_path / "seed"
    shutil.copytree(SEED_DIR, changed)
    data = yaml.safe_load((changed / "levels.yaml").read_text(encoding="utf-8"))
    data["levels"][1]["name"] = "초급 학습자"
    (changed / "levels.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")
    try:
        await _seed(stack, changed)
        for _ in range(100):
            if await _levels_name(api, "beginner") == "초급 학습자":
                break
            await asyncio.sleep(0.1)
        assert await _levels_name(api, "beginner") == "초급 학습자"
    finally:
        await _seed(stack, SEED_DIR)
    for _ in range(100):
        if await _levels_name(api, "beginner") == "초급자":
            return
        await asyncio.sleep(0.1)
    raise AssertionError("restoring the seed did not reach the gateway")


async def test_crashed_service_is_reported_then_restarted(
    stack: Stack, api: httpx.AsyncClient
) -> None:
    await stack.kill("feedback", signal.SIGKILL)
    reply = await api.get("/health")
    assert reply.status_code == 503
    body = reply.json()
    assert body["status"] == "degraded"
    assert "feedback_service" in body["degraded"]
    assert body["services"]["feedback_service"] == "unavailable"
    # The supervisor restarts it; the stack becomes healthy again without help.
    healthy = await stack.wait_healthy(timeout=60)
    assert healthy["services"]["feedback_service"] == "serving"
    assert stack.children["feedback"].restarts >= 1
