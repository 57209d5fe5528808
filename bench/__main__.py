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
import resource
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import nats
import psutil

from bench.load import (
    LoadPool,
    Samples,
    WatcherFleet,
    encode_request,
    now,
    percentiles,
    session_body,
)
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


def _row(scenario: str, samples: Samples, rps: float, note: str = "") -> Row:
    p50, p95, p99 = percentiles(samples.latencies_ms)
    FAILURES.update(samples.failures)
    return Row(scenario, len(samples.latencies_ms), samples.errors, rps, p50, p95, p99, note=note)


async def measure_get(
    pool: LoadPool,
    client: httpx.AsyncClient,
    gateway: Stack,
    bare: Bare,
    path: str,
    headers: dict[str, str],
    args: argparse.Namespace,
) -> Row:
    gateway_port = gateway.gateway_port
    gateway_pids = gateway.gateway_pids
    probe = await client.get(f"http://{HOST}:{gateway_port}{path}", headers=headers)
    if probe.status_code != 200:
        raise RuntimeError(f"{path} answered {probe.status_code}: {probe.text[:200]}")
    size = len(probe.content)
    ours = encode_request("GET", HOST, gateway_port, path, headers)
    theirs = encode_request("GET", HOST, bare.port, f"/static/{size}")
    for port, payload in ((gateway_port, ours), (bare.port, theirs)):  # warm-up
        await pool.closed_loop(HOST, port, payload, connections=4, seconds=0.5, max_requests=2000)
    # Alternating one-second slices: the machine's other load weighs on both sides alike.
    rounds = max(1, round(args.seconds))
    loop = {
        "connections": args.concurrency,
        "seconds": args.seconds / rounds,
        "max_requests": args.max_requests // rounds,
    }
    samples, bare_samples = Samples(), Samples()
    elapsed = bare_elapsed = bare_cpu = gateway_cpu = 0.0
    for _ in range(rounds):
        cpu = _cpu_sum(gateway_pids)
        got = await pool.closed_loop(HOST, gateway_port, ours, **loop)
        gateway_cpu += _cpu_sum(gateway_pids) - cpu
        samples.merge(got)
        elapsed += got.elapsed_s
        cpu = bare.cpu_seconds()
        got = await pool.closed_loop(HOST, bare.port, theirs, **loop)
        bare_cpu += bare.cpu_seconds() - cpu
        bare_samples.merge(got)
        bare_elapsed += got.elapsed_s
    rps = len(samples.latencies_ms) / elapsed
    bare_rps = len(bare_samples.latencies_ms) / bare_elapsed
    row = _row(
        f"GET {path.split('?')[0]}",
        samples,
        rps,
        f"{size} B, {args.concurrency} conns; bare server at {bare_cpu / bare_elapsed:.0%} CPU"
        f"{_processes(len(gateway_pids))}; "
        f"CPU per request: gateway {_per_request(gateway_cpu, samples)} µs, "
        f"bare {_per_request(bare_cpu, bare_samples)} µs",
    )
    row.bare_rps, row.ratio = bare_rps, rps / bare_rps
    return row


async def open_loop_creates(
    pool: LoadPool, stack: Stack, topic: dict[str, Any], args: argparse.Namespace
) -> Row:
    """POST /sessions at a fixed rate whatever the answers' pace (open loop).

    The note gives each stack process's CPU time per create over the load (user + system, from
    psutil; background generation and event consumers included): the figure the machine's other
    load moves least.
    """
    names = {
        child.process.pid: name
        for name, child in stack.children.items()
        if child.process is not None
    } | {pid: "gateway" for pid in stack.gateway_pids}  # its processes summed, as one service
    # Every process under the bench: the services by name, the engines (each Postgres backend,
    # NATS, Valkey) and the load generator's workers by their program's name.
    procs = psutil.Process().children(recursive=True)
    cpu_before = {proc.pid: _cpu(proc.pid) for proc in procs}
    samples = await pool.open_loop(
        HOST,
        stack.gateway_port,
        "/sessions",
        topic,
        rate=args.create_rate,
        seconds=args.create_seconds,
        timeout=30.0,
        expect=201,
    )
    creates = max(1, len(samples.latencies_ms))
    cpu: dict[str, float] = {}
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            label = names.get(proc.pid) or proc.name()
            spent = (_cpu(proc.pid) - cpu_before[proc.pid]) / creates * 1000
            cpu[label] = cpu.get(label, 0.0) + spent
    return _row(
        "POST /sessions (open loop)",
        samples,
        len(samples.latencies_ms) / samples.elapsed_s,
        f"{args.create_rate:g}/s for {args.create_seconds:g} s, latency from the scheduled send; "
        f"CPU per create: {sum(cpu.values()):.1f} ms in all, "
        + ", ".join(
            f"{name} {ms:.1f}"
            for name, ms in sorted(cpu.items(), key=lambda i: -i[1])
            if ms >= 0.05
        ),
    )


def _cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def _cpu_sum(pids: list[int]) -> float:
    return sum(map(_cpu_seconds, pids))


def _processes(n: int) -> str:
    """How many processes each side of a GET row had (when more than one)."""
    return f" ({n} processes each side)" if n > 1 else ""


def _listening(pid: int, port: int) -> bool:
    """Whether the process has its listening socket on `port` yet."""
    with contextlib.suppress(psutil.Error):
        for conn in psutil.Process(pid).net_connections("tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                return True
    return False


async def wait_listening(pids: list[int], port: int, timeout: float = 60.0) -> None:
    """Until every process sharing `port` listens on it (one answering is not all of them)."""
    deadline = time.monotonic() + timeout
    while not all(_listening(pid, port) for pid in pids):
        if time.monotonic() > deadline:
            raise RuntimeError(f"not every process listens on {port} after {timeout:.0f} s")
        await asyncio.sleep(0.2)


def _connections(pid: int, port: int) -> int:
    """Established connections the process holds on its listening `port` (accepted sockets)."""
    try:
        conns = psutil.Process(pid).net_connections("tcp")
    except psutil.Error:
        return 0
    established = psutil.CONN_ESTABLISHED
    return sum(1 for c in conns if c.status == established and c.laddr and c.laddr.port == port)


def _per_request(cpu_seconds: float, samples: Samples) -> str:
    """The process's CPU time per answered request, in µs: what the machine's load moves least."""
    return f"{cpu_seconds / max(1, len(samples.latencies_ms)) * 1e6:.0f}"


def _gateways(n: int) -> str:
    return f"gateway ({n} processes)" if n > 1 else "gateway"


def _rss(pid: int) -> int:
    return int(psutil.Process(pid).memory_info().rss)


def _cpu(pid: int) -> float:
    """User + system CPU seconds of a process so far (0 once it is gone)."""
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.NoSuchProcess:
        return 0.0
    return float(times.user + times.system)


async def watchers(
    stack: Stack, created: dict[str, Any], args: argparse.Namespace
) -> tuple[Row, Row]:
    """N WebSockets on one session; events published on its progress subject, timed to all."""
    gateways = stack.gateway_pids
    realtime = stack.children["realtime"].process
    assert realtime is not None
    sid, token = created["session_id"], created["access_token"]
    # Every gateway process: RSS and CPU are summed over them; each holds the watchers the
    # kernel gave it and its own Watch stream.
    baseline = [_rss(pid) for pid in gateways]
    before = sum(baseline), _rss(realtime.pid)
    fleet = WatcherFleet(args.watcher_processes)
    latencies: list[float] = []
    firsts: list[float] = []  # to the first watcher: NATS, realtime, the gateway's first write
    try:
        n = await fleet.open(HOST, stack.gateway_port, f"/sessions/{sid}/ws", token, args.watchers)
        FAILURES.update({f"WS {k}": v for k, v in fleet.failures.items()})
        await asyncio.sleep(2)  # every watcher registered, snapshots sent
        after = sum(map(_rss, gateways)), _rss(realtime.pid)
        split = [_connections(pid, stack.gateway_port) for pid in gateways]
        assert stack.nats_url is not None
        nc = await nats.connect(stack.nats_url)
        each_before = [_cpu(pid) for pid in gateways]
        cpu_before = sum(each_before), _cpu(realtime.pid), sum(map(_cpu, fleet.pids()))
        try:
            for k in range(args.events):
                payload = events_pb2.SessionProgress(
                    session_id=sid, type="bench", data_json=json.dumps({"k": k}), sequence=0
                )
                sent = now()
                await nc.publish(subjects.progress_subject(sid), payload.SerializeToString())
                arrival = await fleet.arrival(k, timeout=10)
                if arrival is not None:
                    latencies.append((arrival[1] - sent) * 1000)
                    firsts.append((arrival[0] - sent) * 1000)
                await asyncio.sleep(0.2)
        finally:
            each_after = [_cpu(pid) for pid in gateways]
            cpu_after = sum(each_after), _cpu(realtime.pid), sum(map(_cpu, fleet.pids()))
            await nc.close()
    finally:
        await fleet.close()
    per_gateway = (after[0] - before[0]) / max(1, n) / 1024
    per_realtime = (after[1] - before[1]) / max(1, n) / 1024
    p50, p95, p99 = percentiles(latencies)
    # Per gateway process: what one replica spends on its share of the watchers.
    each = " / ".join(
        f"{(a - b) / max(1, args.events) * 1000:.0f}"
        for b, a in zip(each_before, each_after, strict=True)
    )
    fanout = Row(
        f"WS event → all {n} watchers",
        args.events,
        args.events - len(latencies),
        float("nan"),
        p50,
        p95,
        p99,
        note=(
            "errors: events not seen by every watcher within 10 s; "
            f"first watcher p50 {percentiles(firsts)[0]:.1f} ms; CPU per event: "
            + ", ".join(
                f"{name} {(after_ - before_) / max(1, args.events) * 1000:.0f} ms"
                + (f" ({each} each)" if name.startswith("gateway (") else "")
                for name, before_, after_ in zip(
                    (_gateways(len(gateways)), "realtime", "watcher processes"),
                    cpu_before,
                    cpu_after,
                    strict=True,
                )
            )
        ),
    )
    memory = Row(
        f"WS memory per watcher ({n} of {args.watchers} open)",
        n,
        args.watchers - n,
        float("nan"),
        float("nan"),
        float("nan"),
        float("nan"),
        note=f"RSS growth: {_gateways(len(gateways))} {per_gateway:.1f} KB, "
        f"realtime {per_realtime:.1f} KB"
        + (
            f"; watchers per gateway process {' / '.join(map(str, split))}; each gateway "
            f"process starts at {' / '.join(f'{b / 2**20:.0f}' for b in baseline)} MB, "
            f"not counted above"
            if len(gateways) > 1
            else ""
        ),
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


@dataclass
class Bare:
    """Processes of ours on one port of 127.0.0.1 (the bare endpoint, the fake LLM server)."""

    port: int
    processes: list[asyncio.subprocess.Process]

    def cpu_seconds(self) -> float:
        return _cpu_sum([process.pid for process in self.processes])

    async def stop(self) -> None:
        for process in self.processes:
            if process.returncode is None:
                process.terminate()
        for process in self.processes:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), 10)


async def serve(args: list[str], port: int, probe: str, processes: int = 1) -> Bare:
    """Starts `processes` × `python <args>` and waits until each listens and GET `probe`
    answers 200."""
    bare = Bare(port, [])
    for _ in range(processes):
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *args,
            cwd=Path(__file__).parent.parent,
            start_new_session=True,
        )
        bare.processes.append(process)
    async with httpx.AsyncClient() as client:
        for _ in range(300):
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"http://{HOST}:{port}{probe}")).status_code == 200:
                    await wait_listening([process.pid for process in bare.processes], port)
                    return bare
            await asyncio.sleep(0.1)
    for process in bare.processes:
        process.kill()
    raise RuntimeError(f"{args} did not start")


async def serve_bare(processes: int) -> Bare:
    """The bare endpoint as `processes` processes sharing a port, served the way the gateway's
    are (uvicorn, uvloop, httptools; SO_REUSEPORT)."""
    port = engines.free_port()
    return await serve(["-m", "bench.bare", str(port)], port, "/static/10", processes)


async def serve_fake_llm() -> Bare:
    """The fake LLM server as its own process (generation calls it as it would OpenAI)."""
    port = engines.free_port()
    return await serve(["-m", "infou_devtools.fakellm", "--port", str(port)], port, "/v1/models")


def raise_fd_limit() -> int:
    """Open files up to the hard limit, inherited by the stack (10,000 WebSockets = 10,000 fds)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


async def run(args: argparse.Namespace) -> list[Row]:
    rows: list[Row] = []
    raise_fd_limit()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    (args.out.parent / "stack.log").unlink(missing_ok=True)
    fake_llm = await serve_fake_llm()
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(
            data_dir=Path(tmp),
            gateway_port=engines.free_port(),
            fast_engines=True,
            echo=False,
            log_file=args.out.parent / "stack.log",  # kept for reading after the run
            generation_job_processes=args.generation_job_processes,
            gateway_processes=args.gateway_processes,
            extra_env={
                # Production middleware, limits no run reaches.
                "INFOU_LOG_JSON": "true",
                "INFOU_LOG_LEVEL": "INFO",
                "INFOU_RATE_LIMIT_PER_MINUTE": "100000000",
                "INFOU_SESSIONS_PER_CLIENT_PER_DAY": "100000000",
                # Admission stays on (every create reserves its estimate), with room for the run.
                "INFOU_DAILY_BUDGET_USD": "1000000",
                "INFOU_CLIENT_BUDGET_SHARE": "1.0",
                "INFOU_WS_MAX_PER_SESSION": str(max(5, args.watchers)),
                "INFOU_WS_MAX_PER_CLIENT": str(max(50, args.watchers)),
                # The production sampler (deploy/k8s/base/config.yaml); no exporter here.
                "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                "OTEL_TRACES_SAMPLER_ARG": "0.1",
                # Generation runs in the background against the fake LLM server.
                "INFOU_OPENAI_API_KEY": "sk-fake-bench",
                "INFOU_OPENAI_BASE_URL": f"http://{HOST}:{fake_llm.port}/v1",
                "INFOU_JOBS_NICE": str(args.jobs_nice),
            },
        )
        pool = LoadPool(args.clients)
        bare: Bare | None = None
        try:
            await stack.start()
            await wait_listening(stack.gateway_pids, stack.gateway_port)
            bare = await serve_bare(args.gateway_processes)
            async with httpx.AsyncClient(timeout=30) as client:
                gateway = stack.gateway_url
                for path in CATALOG if args.seconds > 0 else ():
                    rows.append(await measure_get(pool, client, stack, bare, path, {}, args))
                    print(_format(rows[-1]), flush=True)
                topic = (await client.get(f"{gateway}/main-topics/ai-ml")).json()
                reply = await client.post(
                    f"{gateway}/sessions",
                    content=session_body(topic),
                    headers={"Content-Type": "application/json"},
                )
                if reply.status_code != 201:
                    raise RuntimeError(f"POST /sessions answered {reply.status_code}: {reply.text}")
                created = reply.json()
                headers = {"Authorization": f"Bearer {created['access_token']}"}
                sid = created["session_id"]
                article = None
                token_paths = []
                if args.seconds > 0:
                    article = await wait_for_article(client, gateway, created, headers)
                    token_paths = [f"/sessions/{sid}", f"/sessions/{sid}/curriculum"]
                if article:
                    token_paths.append(f"/articles/{article}")
                for path in token_paths:
                    row = await measure_get(pool, client, stack, bare, path, headers, args)
                    row.scenario = "GET " + path.replace(sid, "{id}").replace(
                        article or "\0", "{id}"
                    )
                    rows.append(row)
                    print(_format(rows[-1]), flush=True)
                if args.create_seconds > 0:
                    rows.append(await open_loop_creates(pool, stack, topic, args))
                    print(_format(rows[-1]), flush=True)
            if args.watchers > 0:
                for row in await watchers(stack, created, args):
                    rows.append(row)
                    print(_format(row), flush=True)
        finally:
            pool.close()
            if bare is not None:
                await bare.stop()
            await stack.stop()
            await fake_llm.stop()
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
    parser.add_argument(
        "--seconds", type=float, default=6.0, help="per GET scenario (and bare); 0 skips them"
    )
    parser.add_argument("--concurrency", type=int, default=32, help="connections per GET")
    parser.add_argument("--max-requests", type=int, default=50_000, help="cap per GET run")
    parser.add_argument("--create-rate", type=float, default=50.0, help="POST /sessions per s")
    parser.add_argument("--create-seconds", type=float, default=10.0, help="0 skips creates")
    parser.add_argument("--watchers", type=int, default=200, help="WebSockets (up to 10000)")
    parser.add_argument("--events", type=int, default=10, help="events sent to the watchers")
    parser.add_argument("--clients", type=int, default=2, help="load-generator processes (HTTP)")
    parser.add_argument(
        "--generation-job-processes",
        type=int,
        default=1,
        help="generation job processes beside its API-only process (0: one process does both)",
    )
    parser.add_argument(
        "--jobs-nice", type=int, default=10, help="CPU niceness of the generation job processes"
    )
    parser.add_argument(
        "--watcher-processes", type=int, default=1, help="processes holding the WebSockets"
    )
    parser.add_argument(
        "--gateway-processes",
        type=int,
        default=2,
        help="gateway processes sharing its port, as replicas (the bare endpoint gets as many)",
    )
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
