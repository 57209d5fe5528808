"""`python -m bench` (`make bench`): the issue-14 scenarios against a real stack, one table.

Starts its own stack (embedded engines, every service as a process, the gateway on a free port)
and a bare FastAPI endpoint (bench/bare.py) on another free port, both on 127.0.0.1 only. Every
load loop is bounded in time and in count. The gateway keeps its production middleware: the rate
limit is on (with a limit no run reaches), metrics, tracing with its default sampler, JSON access
logs at INFO. The table is printed and written as JSON (bench/results/latest.json).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import nats
import psutil
import websockets

from infou_devtools import engines
from infou_devtools.stack import Stack
from infou_libs import subjects
from infou_protos.events.v1 import events_pb2

HOST = "127.0.0.1"
# Why requests failed, over the run ("HTTP 503", "ReadTimeout", ...): printed after the table.
FAILURES: Counter[str] = Counter()
RESULTS = Path(__file__).parent / "results"
CATALOG = (
    "/levels",
    "/main-topics",
    "/main-topics/ai-ml",
    "/sub-topics/curated?main_slug=ai-ml&level=intermediate",
)


@dataclass
class Row:
    scenario: str
    requests: int
    errors: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    bare_rps: float | None = None
    ratio: float | None = None
    note: str = ""


def _quantiles(timings: list[float]) -> tuple[float, float, float]:
    if len(timings) < 2:
        only = timings[0] if timings else float("nan")
        return only, only, only
    q = statistics.quantiles(timings, n=100, method="inclusive")
    return q[49], q[94], q[98]


async def closed_loop(
    client: httpx.AsyncClient,
    url: str,
    headers: dict[str, str],
    *,
    concurrency: int,
    seconds: float,
    max_requests: int,
) -> tuple[list[float], int, float]:
    """`concurrency` clients each sending the next request when the last answered."""
    timings: list[float] = []
    errors = 0
    sent = 0
    stop_at = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal errors, sent
        while sent < max_requests and time.perf_counter() < stop_at:
            sent += 1
            start = time.perf_counter()
            try:
                reply = await client.get(url, headers=headers)
                ok = reply.status_code == 200
                if not ok:
                    FAILURES[f"GET {reply.status_code}"] += 1
            except httpx.HTTPError as exc:
                ok = False
                FAILURES[f"GET {type(exc).__name__}"] += 1
            timings.append((time.perf_counter() - start) * 1000)
            errors += not ok

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return timings, errors, time.perf_counter() - began


async def measure_get(
    client: httpx.AsyncClient,
    gateway: str,
    bare: str,
    path: str,
    headers: dict[str, str],
    args: argparse.Namespace,
) -> Row:
    probe = await client.get(gateway + path, headers=headers)
    if probe.status_code != 200:
        raise RuntimeError(f"{path} answered {probe.status_code}: {probe.text[:200]}")
    size = len(probe.content)
    bare_url = f"{bare}/static/{size}"
    for url in (gateway + path, bare_url):  # warm-up
        await closed_loop(client, url, headers, concurrency=4, seconds=0.5, max_requests=200)
    # Alternating one-second slices: the machine's other load weighs on both sides alike.
    rounds = max(1, round(args.seconds))
    loop = {
        "concurrency": args.concurrency,
        "seconds": args.seconds / rounds,
        "max_requests": args.max_requests // rounds,
    }
    timings, bare_timings = [], []
    errors, elapsed, bare_elapsed = 0, 0.0, 0.0
    for _ in range(rounds):
        got, failed, took = await closed_loop(client, gateway + path, headers, **loop)
        timings += got
        errors += failed
        elapsed += took
        got, _, took = await closed_loop(client, bare_url, {}, **loop)
        bare_timings += got
        bare_elapsed += took
    rps, bare_rps = len(timings) / elapsed, len(bare_timings) / bare_elapsed
    p50, p95, p99 = _quantiles(timings)
    return Row(
        f"GET {path.split('?')[0]}",
        len(timings),
        errors,
        rps,
        p50,
        p95,
        p99,
        bare_rps,
        rps / bare_rps,
        f"{size} B, {args.concurrency} conns",
    )


def session_body(topic: dict[str, Any]) -> dict[str, Any]:
    return {
        "main_topic_id": topic["id"],
        "sub_topic_ids": [s["id"] for s in topic["sub_topics"][:2]],
        "level": "intermediate",
        "personalization": {
            "learning_pace": "regular",
            "preferred_article_length": "short",
            "include_examples": True,
            "interests": ["자동화"],
            "learning_goals": f"벤치마크 {uuid.uuid4().hex[:8]}",
        },
        "options": {"max_articles_per_subtopic": 1, "include_practice_problems": False},
    }


async def open_loop_creates(
    client: httpx.AsyncClient, gateway: str, topic: dict[str, Any], args: argparse.Namespace
) -> Row:
    """POST /sessions at a fixed rate whatever the answers' pace (open loop)."""
    timings: list[float] = []
    errors = 0

    async def one() -> None:
        nonlocal errors
        start = time.perf_counter()
        try:
            reply = await client.post(f"{gateway}/sessions", json=session_body(topic))
            ok = reply.status_code == 201
            if not ok:
                FAILURES[f"POST {reply.status_code}"] += 1
        except httpx.HTTPError as exc:
            ok = False
            FAILURES[f"POST {type(exc).__name__}"] += 1
        timings.append((time.perf_counter() - start) * 1000)
        errors += not ok

    total = int(args.create_rate * args.create_seconds)
    began = time.perf_counter()
    tasks = []
    for i in range(total):
        delay = began + i / args.create_rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one()))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - began
    p50, p95, p99 = _quantiles(timings)
    return Row(
        "POST /sessions (open loop)",
        total,
        errors,
        total / elapsed,
        p50,
        p95,
        p99,
        note=f"{args.create_rate}/s for {args.create_seconds}s",
    )


def _rss(pid: int) -> int:
    return int(psutil.Process(pid).memory_info().rss)


async def watchers(
    stack: Stack, created: dict[str, Any], args: argparse.Namespace
) -> tuple[Row, Row]:
    """N WebSockets on one session; events published on its progress subject, timed to all."""
    gateway = stack.children["gateway"].process
    realtime = stack.children["realtime"].process
    assert gateway is not None
    assert realtime is not None
    sid, token = created["session_id"], created["access_token"]
    url = f"ws://{HOST}:{stack.gateway_port}/sessions/{sid}/ws"
    arrivals: dict[int, list[float]] = {}
    everyone: dict[int, asyncio.Event] = {}
    before = _rss(gateway.pid), _rss(realtime.pid)
    sockets: list[Any] = []
    readers: list[asyncio.Task[None]] = []

    async def read(ws: Any) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in ws:
                message = json.loads(raw)
                if message["type"] == "bench":
                    k = message["data"]["k"]
                    got = arrivals.setdefault(k, [])
                    got.append(time.perf_counter())
                    if len(got) == len(sockets):
                        everyone.setdefault(k, asyncio.Event()).set()

    headers = {"Authorization": f"Bearer {token}"}
    try:
        for _ in range(args.watchers):
            ws = await websockets.connect(url, additional_headers=headers, open_timeout=30)
            sockets.append(ws)
            readers.append(asyncio.create_task(read(ws)))
        await asyncio.sleep(2)  # every Watch stream open, snapshots sent
        after = _rss(gateway.pid), _rss(realtime.pid)
        assert stack.nats_url is not None
        nc = await nats.connect(stack.nats_url)
        latencies: list[float] = []
        try:
            for k in range(args.events):
                sent = time.perf_counter()
                payload = events_pb2.SessionProgress(
                    session_id=sid, type="bench", data_json=json.dumps({"k": k}), sequence=0
                )
                await nc.publish(subjects.progress_subject(sid), payload.SerializeToString())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(everyone.setdefault(k, asyncio.Event()).wait(), 10)
                got = arrivals.get(k, [])
                if len(got) == len(sockets):
                    latencies.append((max(got) - sent) * 1000)
                await asyncio.sleep(0.2)
        finally:
            await nc.close()
    finally:
        for ws in sockets:
            with contextlib.suppress(Exception):
                await ws.close()
        for task in readers:
            task.cancel()
    n = len(sockets)
    per_gateway = (after[0] - before[0]) / n / 1024
    per_realtime = (after[1] - before[1]) / n / 1024
    p50, p95, p99 = _quantiles(latencies)
    fanout = Row(
        f"WS event → all {n} watchers",
        args.events,
        args.events - len(latencies),
        float("nan"),
        p50,
        p95,
        p99,
        note="errors: events not seen by every watcher within 10 s",
    )
    memory = Row(
        f"WS memory per watcher ({n})",
        n,
        0,
        float("nan"),
        float("nan"),
        float("nan"),
        float("nan"),
        note=f"gateway {per_gateway:.1f} KB, realtime {per_realtime:.1f} KB",
    )
    return fanout, memory


async def wait_for_article(
    client: httpx.AsyncClient, gateway: str, created: dict[str, Any], headers: dict[str, str]
) -> str | None:
    deadline = time.monotonic() + 30  # generation runs in the background meanwhile
    while time.monotonic() < deadline:
        reply = await client.get(f"{gateway}/sessions/{created['session_id']}", headers=headers)
        article = reply.json().get("current_article_id")
        if article:
            return str(article)
        await asyncio.sleep(0.5)
    return None


async def serve_bare(port: int) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "uvicorn",
        "bench.bare:app",
        "--host",
        HOST,
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
        cwd=Path(__file__).parent.parent,
        start_new_session=True,
    )
    async with httpx.AsyncClient() as client:
        for _ in range(200):
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"http://{HOST}:{port}/static/10")).status_code == 200:
                    return process
            await asyncio.sleep(0.1)
    process.kill()
    raise RuntimeError("the bare endpoint did not start")


async def run(args: argparse.Namespace) -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(
            data_dir=Path(tmp),
            gateway_port=engines.free_port(),
            fast_engines=True,
            echo=False,
            log_file=Path(tmp) / "stack.log",
            extra_env={
                # Production middleware, limits no run reaches.
                "INFOU_LOG_JSON": "true",
                "INFOU_LOG_LEVEL": "INFO",
                "INFOU_RATE_LIMIT_PER_MINUTE": "100000000",
                "INFOU_SESSIONS_PER_CLIENT_PER_DAY": "100000000",
                "INFOU_WS_MAX_PER_SESSION": str(max(5, args.watchers)),
                "INFOU_WS_MAX_PER_CLIENT": str(max(50, args.watchers)),
            },
        )
        bare_port = engines.free_port()
        await stack.start()
        bare = await serve_bare(bare_port)
        try:
            limits = httpx.Limits(max_connections=args.concurrency + 8)
            async with httpx.AsyncClient(timeout=30, limits=limits) as client:
                gateway, bare_url = stack.gateway_url, f"http://{HOST}:{bare_port}"
                for path in CATALOG:
                    rows.append(await measure_get(client, gateway, bare_url, path, {}, args))
                    print(_format(rows[-1]), flush=True)
                topic = (await client.get(f"{gateway}/main-topics/ai-ml")).json()
                created = (
                    await client.post(f"{gateway}/sessions", json=session_body(topic))
                ).json()
                headers = {"Authorization": f"Bearer {created['access_token']}"}
                sid = created["session_id"]
                article = await wait_for_article(client, gateway, created, headers)
                token_paths = [f"/sessions/{sid}", f"/sessions/{sid}/curriculum"]
                if article:
                    token_paths.append(f"/articles/{article}")
                for path in token_paths:
                    row = await measure_get(client, gateway, bare_url, path, headers, args)
                    row.scenario = "GET " + path.replace(sid, "{id}").replace(
                        article or "\0", "{id}"
                    )
                    rows.append(row)
                    print(_format(rows[-1]), flush=True)
                if args.create_seconds > 0:
                    rows.append(await open_loop_creates(client, gateway, topic, args))
                    print(_format(rows[-1]), flush=True)
            if args.watchers > 0:
                for row in await watchers(stack, created, args):
                    rows.append(row)
                    print(_format(row), flush=True)
        finally:
            bare.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(bare.wait(), 10)
            await stack.stop()
    return rows


def _num(value: float | None, fmt: str) -> str:
    if value is None or value != value:  # None or NaN
        return "–"
    return format(value, fmt)


HEADER = "| scenario | n | err | req/s | p50 ms | p95 ms | p99 ms | bare req/s | × bare | note |"


def _format(row: Row) -> str:
    return (
        f"| {row.scenario} | {row.requests} | {row.errors} | {_num(row.rps, '.0f')} "
        f"| {_num(row.p50_ms, '.1f')} | {_num(row.p95_ms, '.1f')} | {_num(row.p99_ms, '.1f')} "
        f"| {_num(row.bare_rps, '.0f')} | {_num(row.ratio, '.3f')} | {row.note} |"
    )


def machine() -> str:
    memory = psutil.virtual_memory().total / 2**30
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{memory:.0f} GiB, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__)
    parser.add_argument("--seconds", type=float, default=6.0, help="per GET scenario (and bare)")
    parser.add_argument("--concurrency", type=int, default=32, help="connections per GET")
    parser.add_argument("--max-requests", type=int, default=50_000, help="cap per GET run")
    parser.add_argument("--create-rate", type=float, default=50.0, help="POST /sessions per s")
    parser.add_argument("--create-seconds", type=float, default=10.0, help="0 skips creates")
    parser.add_argument("--watchers", type=int, default=200, help="WebSockets (up to 10000)")
    parser.add_argument("--events", type=int, default=10, help="events sent to the watchers")
    parser.add_argument("--out", type=Path, default=RESULTS / "latest.json")
    args = parser.parse_args()
    if not 0 <= args.watchers <= 10_000:
        parser.error("--watchers is 0..10000")
    if args.create_rate * args.create_seconds > 10_000:
        parser.error("at most 10000 creates per run")
    print(f"machine: {machine()}", flush=True)
    print(HEADER)
    print("|" + "---|" * 10, flush=True)
    started = time.monotonic()
    rows = asyncio.run(run(args))
    print(f"\n{len(rows)} scenarios in {time.monotonic() - started:.0f} s")
    if FAILURES:
        print("failed requests:", ", ".join(f"{k} ×{n}" for k, n in FAILURES.most_common()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "machine": machine(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "arguments": {k: str(v) for k, v in vars(args).items()},
        "rows": [asdict(row) for row in rows],
        "failures": dict(FAILURES),
    }
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
