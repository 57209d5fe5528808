"""Runs the fake LLM server in a thread of this process (tests, e2e, bench) and drives its knobs."""

from __future__ import annotations

import asyncio
import threading
import time
from types import TracebackType
from typing import Any

import httpx
import uvicorn

from infou_devtools.engines import free_port
from infou_devtools.fakellm.app import FakeState, create_app


class FakeLLMServer:
    """The server on 127.0.0.1 and a free port, in its own thread and event loop."""

    def __init__(self, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self.port = port or free_port()
        self.state = FakeState()
        config = uvicorn.Config(
            create_app(self.state),
            host=host,
            port=self.port,
            log_level="warning",
            lifespan="off",
            access_log=False,
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.url

    def start(self, timeout: float = 10.0) -> FakeLLMServer:
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._server.serve()), name="fake-llm", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"fake LLM server did not start on port {self.port}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class FakeLLMControl:
    """The control endpoints over HTTP (works for a server in another process too)."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    async def arm(
        self, scenario: str, *, times: int = 1, api: str | None = None, **options: Any
    ) -> None:
        """The next `times` requests (of `api`, or any) meet `scenario`; -1 for all of them."""
        body = {"scenario": scenario, "times": times, "api": api, **options}
        await self._post("/_control", body)

    async def configure(self, **config: float) -> None:
        """Default speed knobs for every request: ttft_ms, tps, cached_tokens."""
        await self._post("/_control", {"config": config})

    async def flag_for_moderation(self, *terms: str, times: int | None = None) -> None:
        """/v1/moderations flags inputs containing any of `terms` (until the next reset; with
        `times`, only that many of them)."""
        await self._post("/_control", {"moderation_terms": list(terms), "moderation_flags": times})

    async def reset(self) -> None:
        await self._post("/_control/reset", {})

    async def stats(self) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.get(f"{self.url}/_stats")
            response.raise_for_status()
            stats: dict[str, Any] = response.json()
            return stats

    async def _post(self, path: str, body: dict[str, Any]) -> None:
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(f"{self.url}{path}", json=body)
            response.raise_for_status()
