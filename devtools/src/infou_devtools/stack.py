"""The whole stack as supervised child processes: `infou up`, and the e2e tests' harness.

Engines whose URL is set (INFOU_DATABASE_URL, INFOU_NATS_URL, INFOU_REDIS_URL) are used as
they are; the others start embedded with their data under the data folder. Every service runs
as its own process with prefixed logs; a crashed one is reported and restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from infou_devtools import engines
from infou_libs.logging import get_logger
from infou_libs.settings import mask_url

log = get_logger(__name__)

SERVICES: tuple[str, ...] = ("catalog", "session", "generation", "feedback", "realtime")
DATABASE_NAME = "infou"
_COLORS = ("36", "32", "33", "35", "34", "31", "96")


@dataclass
class ChildSpec:
    name: str
    args: list[str]
    env: dict[str, str]


@dataclass
class Child:
    spec: ChildSpec
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0
    started_at: float = 0.0
    pump: asyncio.Task[None] | None = None


@dataclass
class Stack:
    """Engines + services + gateway. `start()` returns once /health says healthy."""

    data_dir: Path
    gateway_port: int = 8000
    database_url: str | None = None
    nats_url: str | None = None
    redis_url: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    fast_engines: bool = False
    echo: bool = True
    restart: bool = True
    extra_children: list[ChildSpec] = field(default_factory=list)
    database_name: str = DATABASE_NAME
    log_file: Path | None = None
    # With N > 0, generation-service runs as an API-only process (INFOU_PROCESS_ROLE=api, the
    # address the others call) and N job processes (role `jobs`, named generation-jobs-<i>).
    generation_job_processes: int = 0
    # With N > 1, N gateway processes share the gateway port (INFOU_REUSE_PORT): `gateway`,
    # `gateway-1`, … each holding the connections the kernel gives it, as replicas would.
    gateway_processes: int = 1
    embedded: list[engines.EmbeddedServer] = field(default_factory=list)
    children: dict[str, Child] = field(default_factory=dict)
    _stopping: bool = False
    _supervisor: asyncio.Task[None] | None = None
    _background: set[asyncio.Future[None]] = field(default_factory=set)

    @property
    def gateway_pids(self) -> list[int]:
        """The gateway processes running now (one per `gateway_processes`)."""
        return [
            child.process.pid
            for name, child in self.children.items()
            if (name == "gateway" or name.startswith("gateway-")) and child.process is not None
        ]

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    async def start(self, ready_timeout: float = 120.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(self._start_engines)
        assert self.database_url is not None
        self.database_url = await engines.ensure_database(self.database_url, self.database_name)
        env = self._base_env()
        self._say("stack", f"database {mask_url(self.database_url)}")
        self._say("stack", f"nats     {self.nats_url}")
        self._say("stack", f"redis    {self.redis_url}")
        # Each service migrates its own schema as it starts; catalog-service also loads its
        # seed files before it serves, so no separate step runs here.
        ports = {name: engines.free_port() for name in SERVICES}
        addrs = {name: f"127.0.0.1:{port}" for name, port in ports.items()}
        # Services call each other too (session → catalog, realtime → session, …).
        env |= {f"INFOU_{n.upper()}_ADDR": a for n, a in addrs.items()}
        for name in SERVICES:
            self._add(self._service(name, env, ports[name]))
        if self.generation_job_processes > 0:
            self.children["generation"].spec.env["INFOU_PROCESS_ROLE"] = "api"
            for i in range(self.generation_job_processes):
                jobs = self._service("generation", env, engines.free_port())
                jobs.name = f"generation-jobs-{i}"
                jobs.env["INFOU_PROCESS_ROLE"] = "jobs"
                self._add(jobs)
        gateway_env = env | {
            "INFOU_PORT": str(self.gateway_port),
            "INFOU_HOST": "127.0.0.1",
            "INFOU_SERVICE_NAME": "gateway",
        }
        shared = {"INFOU_REUSE_PORT": "true"} if self.gateway_processes > 1 else {}
        for i in range(max(1, self.gateway_processes)):
            name = f"gateway-{i}" if i else "gateway"
            args = [sys.executable, "-m", "infou_gateway"]
            self._add(ChildSpec(name, args, gateway_env | shared))
        for spec in self.extra_children:
            self._add(ChildSpec(spec.name, spec.args, gateway_env | spec.env))
        for child in self.children.values():
            await self._spawn(child)
        self._supervisor = asyncio.create_task(self._supervise(), name="stack-supervisor")
        await self.wait_healthy(ready_timeout)

    @staticmethod
    def _service(name: str, env: dict[str, str], port: int) -> ChildSpec:
        return ChildSpec(
            name,
            [sys.executable, "-m", f"infou_{name}"],
            env
            | {
                "INFOU_GRPC_PORT": str(port),
                "INFOU_METRICS_PORT": str(engines.free_port()),
                "INFOU_SERVICE_NAME": name,
            },
        )

    def service_env(self) -> dict[str, str]:
        """The environment the services run with (for extra processes started later)."""
        return self._base_env()

    def _base_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "INFOU_DATABASE_URL": self.database_url or "",
                "INFOU_NATS_URL": self.nats_url or "",
                "INFOU_REDIS_URL": self.redis_url or "",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.setdefault("INFOU_LOG_JSON", "false")
        env.update(self.extra_env)
        return env

    def _start_engines(self) -> None:
        if not self.database_url:
            pg = engines.start_postgres(self.data_dir / "postgres", fast=self.fast_engines)
            self.embedded.append(pg)
            self.database_url = pg.url
        if not self.nats_url:
            nats = engines.start_nats(self.data_dir / "nats")
            self.embedded.append(nats)
            self.nats_url = nats.url
        if not self.redis_url:
            valkey = engines.start_valkey(self.data_dir / "valkey", persist=not self.fast_engines)
            self.embedded.append(valkey)
            self.redis_url = valkey.url

    def _add(self, spec: ChildSpec) -> None:
        self.children[spec.name] = Child(spec)

    async def _spawn(self, child: Child) -> None:
        spec = child.spec
        child.process = await asyncio.create_subprocess_exec(
            *spec.args,
            env=spec.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        child.started_at = time.monotonic()
        assert child.process.stdout is not None
        child.pump = asyncio.create_task(self._pump_lines(spec.name, child.process.stdout))

    async def _pump_lines(self, name: str, stream: asyncio.StreamReader) -> None:
        while True:
            line = await stream.readline()
            if not line:
                return
            self._say(name, line.decode(errors="replace").rstrip())

    def _say(self, name: str, text: str) -> None:
        if self.log_file is not None:
            with self.log_file.open("a", encoding="utf-8") as out:
                out.write(f"{name:<10}| {text}\n")
        if not self.echo:
            return
        color = _COLORS[hash(name) % len(_COLORS)] if sys.stdout.isatty() else ""
        prefix = f"{name:<10}|"
        if color:
            prefix = f"\033[{color}m{prefix}\033[0m"
        print(f"{prefix} {text}", flush=True)

    async def _supervise(self) -> None:
        while not self._stopping:
            for child in list(self.children.values()):
                proc = child.process
                if proc is None or proc.returncode is None or self._stopping:
                    continue
                code = proc.returncode
                self._say("stack", f"!! {child.spec.name} exited with code {code}")
                log.error("service_crashed", service=child.spec.name, exit_code=code)
                if not self.restart:
                    continue
                # Back off when a service keeps crashing right after start.
                uptime = time.monotonic() - child.started_at
                child.restarts = child.restarts + 1 if uptime < 30 else 1
                delay = min(30.0, 2 ** (child.restarts - 1))
                self._say("stack", f"restarting {child.spec.name} in {delay:.0f}s")
                child.process = None
                asyncio.get_running_loop().call_later(delay, self._schedule_respawn, child)
            await asyncio.sleep(0.5)

    def _schedule_respawn(self, child: Child) -> None:
        self._background.add(asyncio.ensure_future(self._respawn(child)))

    async def _respawn(self, child: Child) -> None:
        if not self._stopping and child.process is None:
            await self._spawn(child)

    async def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Sends a signal to one child (tests use it to kill a worker mid-job)."""
        proc = self.children[name].process
        if proc is not None and proc.returncode is None:
            proc.send_signal(sig)
            await proc.wait()

    async def wait_healthy(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last: object = None
        async with httpx.AsyncClient(timeout=5.0) as client:
            while time.monotonic() < deadline:
                try:
                    reply = await client.get(f"{self.gateway_url}/health")
                    last = reply.json()
                    if reply.status_code == 200:
                        return dict(reply.json())
                except httpx.HTTPError as exc:
                    last = str(exc)
                await asyncio.sleep(0.5)
        raise TimeoutError(f"stack not healthy after {timeout}s; last /health: {last}")

    async def stop(self) -> None:
        self._stopping = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        procs = [c.process for c in self.children.values() if c.process is not None]
        for proc in procs:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        for child in self.children.values():
            if child.pump is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(child.pump, 2)
        for server in reversed(self.embedded):
            await asyncio.to_thread(server.stop)
        self._say("stack", "stopped")


def run_up(port: int | None = None, data_dir: Path | None = None) -> int:
    """`infou up`: runs until Ctrl-C or SIGTERM; returns the exit code."""
    stack = Stack(
        data_dir=(data_dir or Path(os.environ.get("INFOU_DATA_DIR", ".infou"))).resolve(),
        gateway_port=port or int(os.environ.get("INFOU_PORT", "8000")),
        database_url=os.environ.get("INFOU_DATABASE_URL") or None,
        nats_url=os.environ.get("INFOU_NATS_URL") or None,
        redis_url=os.environ.get("INFOU_REDIS_URL") or None,
    )

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            start = asyncio.create_task(stack.start())
            stopped = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait({start, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if start in done:
                start.result()
                url = stack.gateway_url
                stack._say("stack", f"InfoU is up at {url}  (docs: {url}/docs)")
                stack._say("stack", f"try:  curl {url}/health   curl {url}/levels")
                stack._say("stack", "Ctrl-C stops everything")
                await stopped
            else:
                start.cancel()
            return 0
        except Exception as exc:
            stack._say("stack", f"!! start failed: {exc}")
            return 1
        finally:
            await stack.stop()

    return asyncio.run(main())
