"""The whole stack, started once for the e2e tests through the same code as `infou up`."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from infou_devtools import engines
from infou_devtools.stack import Stack

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/e2e is `e2e`: `pytest -m "not e2e"` is the quick loop."""
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
async def stack(
    pg_server_url: str, nats_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    data_dir = tmp_path_factory.mktemp("stack")
    stack = Stack(
        data_dir=data_dir,
        gateway_port=engines.free_port(),
        database_url=pg_server_url,
        nats_url=nats_url,
        redis_url=redis_url,
        database_name=f"infou_e2e_{uuid.uuid4().hex[:8]}",
        extra_env={"INFOU_ENVIRONMENT": "test", "INFOU_LOG_JSON": "true"},
        echo=False,
        log_file=data_dir / "stack.log",
    )
    try:
        await stack.start(ready_timeout=120)
    except Exception:
        print(_tail(stack.log_file))
        await stack.stop()
        raise
    yield stack
    await stack.stop()
    await engines.drop_database(pg_server_url, stack.database_name)


def _tail(path: Path | None, lines: int = 80) -> str:
    if path is None or not path.exists():
        return ""
    return "\n".join(path.read_text(encoding="utf-8").splitlines()[-lines:])


@pytest.fixture
async def api(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=15.0) as client:
        yield client
