"""The load generator: worker processes, each a minimal HTTP/1.1 keep-alive client on uvloop.

httpx in one process spends ~1 ms of CPU per request, so on a 2-core machine it, not the server
under test, set the pace (~200 req/s against a bare endpoint that does thousands). Here each
worker process sends pre-encoded request bytes on raw asyncio transports and parses the answer
with httptools (the parser uvicorn uses); WebSocket watchers are a minimal RFC 6455 client on the
same kind of transport, a few KB per connection. Workers return raw
latency samples (an `array` of milliseconds); the bench merges them and takes percentiles.

Timestamps that cross processes (WebSocket arrivals) are CLOCK_MONOTONIC, one clock per machine.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
import multiprocessing
import os
import time
import uuid
from array import array
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any, cast

import httptools

try:  # uvloop is in the lock through uvicorn[standard]; plain asyncio still works without it.
    import uvloop
except ImportError:  # pragma: no cover - the workspace always has it
    uvloop = None  # type: ignore[assignment]

_SPAWN = multiprocessing.get_context("spawn")  # never fork a process that runs an event loop


def now() -> float:
    """Seconds on the machine-wide monotonic clock (comparable between processes)."""
    return time.clock_gettime(time.CLOCK_MONOTONIC)


def _run(coro: Any) -> Any:
    if uvloop is not None:
        return uvloop.run(coro)
    return asyncio.run(coro)


def encode_request(
    method: str,
    host: str,
    port: int,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
) -> bytes:
    """One HTTP/1.1 keep-alive request, encoded once and sent as-is many times."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", "User-Agent: infou-bench"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class _HTTPConnection(asyncio.Protocol):
    """One keep-alive connection, one request in flight; `request()` returns the status code."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[int] | None = None
        self.closed = False
        self.body: list[bytes] = []
        self.keep_body = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(exc or ConnectionResetError("closed by the server"))

    # httptools callbacks
    def on_body(self, body: bytes) -> None:
        if self.keep_body:
            self.body.append(body)

    def on_message_complete(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(self.parser.get_status_code())
        if not self.parser.should_keep_alive() and self.transport is not None:
            self.transport.close()

    def _fail(self, exc: BaseException) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)

    async def request(self, payload: bytes, timeout: float) -> int:
        assert self.transport is not None
        self.body.clear()
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(payload)
        return await asyncio.wait_for(self.waiter, timeout)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def _connect(host: str, port: int) -> _HTTPConnection:
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(_HTTPConnection, host, port)
    return protocol


@dataclass
class Samples:
    """What a load run measured: latencies (ms), failures by kind, wall time."""

    latencies_ms: array[float] = field(default_factory=lambda: array("d"))
    failures: Counter[str] = field(default_factory=Counter)
    elapsed_s: float = 0.0

    @property
    def errors(self) -> int:
        return sum(self.failures.values())

    def merge(self, other: Samples) -> None:
        self.latencies_ms.extend(other.latencies_ms)
        self.failures.update(other.failures)
        self.elapsed_s = max(self.elapsed_s, other.elapsed_s)


def percentiles(values: array[float] | list[float]) -> tuple[float, float, float]:
    """p50, p95, p99 by the nearest-rank method (NaN when there is nothing)."""
    if not values:
        return float("nan"), float("nan"), float("nan")
    ordered = sorted(values)
    last = len(ordered) - 1

    def rank(p: float) -> float:
        return ordered[min(last, max(0, math.ceil(p / 100 * len(ordered)) - 1))]

    return rank(50), rank(95), rank(99)


# ---- closed loop: N connections, each sending its next request when the last one answered


async def _closed_loop(
    host: str, port: int, payload: bytes, connections: int, seconds: float, max_requests: int
) -> Samples:
    samples = Samples()
    stop_at = now() + seconds
    sent = 0

    async def connection() -> None:
        nonlocal sent
        conn: _HTTPConnection | None = None
        while sent < max_requests and now() < stop_at:
            sent += 1
            start = now()
            try:
                if conn is None or conn.closed:
                    conn = await _connect(host, port)
                status = await conn.request(payload, timeout=10)
                if status != 200:
                    samples.failures[f"HTTP {status}"] += 1
            except (OSError, TimeoutError, httptools.HttpParserError) as exc:
                samples.failures[type(exc).__name__] += 1
                if conn is not None:
                    conn.close()
                conn = None
            samples.latencies_ms.append((now() - start) * 1000)
        if conn is not None:
            conn.close()

    began = now()
    await asyncio.gather(*(connection() for _ in range(connections)))
    samples.elapsed_s = now() - began
    return samples


def closed_loop_worker(
    host: str, port: int, payload: bytes, connections: int, seconds: float, max_requests: int
) -> Samples:
    """Entry point in a worker process."""
    result: Samples = _run(_closed_loop(host, port, payload, connections, seconds, max_requests))
    return result


# ---- open loop: requests leave on a schedule whatever the answers' pace


def session_body(topic: dict[str, Any]) -> bytes:
    """A POST /sessions body; the learning goal differs per request (no content-cache reuse)."""
    body = {
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
    return json.dumps(body, ensure_ascii=False).encode()


async def _open_loop(
    host: str,
    port: int,
    path: str,
    topic: dict[str, Any],
    rate: float,
    seconds: float,
    timeout: float,
    offset: float,
    expect: int,
) -> Samples:
    samples = Samples()
    idle: list[_HTTPConnection] = []
    total = int(rate * seconds)
    headers = {"Content-Type": "application/json"}
    payloads = [
        encode_request("POST", host, port, path, headers, session_body(topic)) for _ in range(total)
    ]

    async def one(payload: bytes, scheduled: float) -> None:
        conn = idle.pop() if idle else None
        try:
            if conn is None or conn.closed:
                conn = await _connect(host, port)
            status = await conn.request(payload, timeout)
            if status == expect:
                idle.append(conn)
            else:
                samples.failures[f"HTTP {status}"] += 1
                conn.close()
        except (OSError, TimeoutError, httptools.HttpParserError) as exc:
            samples.failures[type(exc).__name__] += 1
            if conn is not None:
                conn.close()
        # From the scheduled send, so a late start (a busy client) counts against the server.
        samples.latencies_ms.append((now() - scheduled) * 1000)

    began = now() + offset
    tasks = []
    for i, payload in enumerate(payloads):
        scheduled = began + i / rate
        delay = scheduled - now()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(payload, scheduled)))
    await asyncio.gather(*tasks)
    samples.elapsed_s = now() - began
    for conn in idle:
        conn.close()
    return samples


def open_loop_worker(
    host: str,
    port: int,
    path: str,
    topic: dict[str, Any],
    rate: float,
    seconds: float,
    timeout: float,
    offset: float,
    expect: int,
) -> Samples:
    """Entry point in a worker process: `rate` requests a second for `seconds`."""
    result: Samples = _run(
        _open_loop(host, port, path, topic, rate, seconds, timeout, offset, expect)
    )
    return result


class LoadPool:
    """`processes` worker processes kept for the whole run (started once, spawn context)."""

    def __init__(self, processes: int) -> None:
        self.processes = max(1, processes)
        self.executor = ProcessPoolExecutor(self.processes, mp_context=_SPAWN)

    async def _spread(self, calls: list[Callable[[], Any]]) -> Samples:
        loop = asyncio.get_running_loop()
        parts = await asyncio.gather(*(loop.run_in_executor(self.executor, c) for c in calls))
        merged = Samples()
        for part in parts:
            merged.merge(part)
        return merged

    async def closed_loop(
        self,
        host: str,
        port: int,
        payload: bytes,
        *,
        connections: int,
        seconds: float,
        max_requests: int,
    ) -> Samples:
        """`connections` spread over the workers, all for the same `seconds`."""
        workers = min(self.processes, connections)
        shares = [connections // workers + (i < connections % workers) for i in range(workers)]
        calls = [
            _Call(
                closed_loop_worker,
                host,
                port,
                payload,
                share,
                seconds,
                max(1, max_requests * share // connections),
            )
            for share in shares
        ]
        return await self._spread(calls)  # type: ignore[arg-type]

    async def open_loop(
        self,
        host: str,
        port: int,
        path: str,
        topic: dict[str, Any],
        *,
        rate: float,
        seconds: float,
        timeout: float = 30.0,
        expect: int = 201,
    ) -> Samples:
        """`rate`/s for `seconds`, interleaved over the workers (each sends rate/n, shifted)."""
        n = self.processes
        calls = [
            _Call(
                open_loop_worker,
                host,
                port,
                path,
                topic,
                rate / n,
                seconds,
                timeout,
                i / rate,
                expect,
            )
            for i in range(n)
        ]
        merged = await self._spread(calls)  # type: ignore[arg-type]
        merged.elapsed_s = seconds
        return merged

    def close(self) -> None:
        self.executor.shutdown(cancel_futures=True)


class _Call:
    """A picklable function-and-arguments (functools.partial pickles too, but reads worse)."""

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        self.fn, self.args = fn, args

    def __call__(self) -> Any:
        return self.fn(*self.args)


# ---- WebSocket watchers


_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_BENCH_PREFIX = b'{"type": "bench"'
_BENCH_K = b'{"type": "bench", "data": {"k": '  # how the gateway encodes the bench's events


def _event_number(text: bytes) -> int:
    """k of a bench event; read in place when the text is laid out as the gateway writes it."""
    if text.startswith(_BENCH_K):
        end = text.find(b"}", len(_BENCH_K))
        digits = text[len(_BENCH_K) : end]
        if digits.isdigit():
            return int(digits)
    return int(json.loads(text)["data"]["k"])


def _masked(opcode: int, payload: bytes) -> bytes:
    """A client frame (always masked, RFC 6455 §5.3); only small control frames are sent."""
    key = os.urandom(4)
    body = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + key + body


class _Watcher(asyncio.Protocol):
    """One WebSocket client on a bare transport: the RFC 6455 opening handshake (status and
    accept key checked), then a minimal frame reader. It answers pings (masked pongs) and closes,
    fails on a masked server frame, and reads only the number of the text frames that are bench
    events (every other frame is stepped over by its length): 10,000 of them in one process
    cost ~10 µs of CPU per message, most of it the kernel's receive."""

    __slots__ = ("buffer", "handshake", "key", "on_event", "opened", "request", "transport")

    def __init__(self, request: bytes, key: bytes, on_event: Callable[[int], None]) -> None:
        self.request = request
        self.key = key
        self.on_event = on_event
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.handshake = True
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if self.buffer:
            data = self.buffer + data
        if self.handshake:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = data
                return
            self._accepted(data[:end])
            self.handshake = False
            data = data[end + 4 :]
        self.buffer = self._frames(data)

    def _accepted(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        status = lines[0].split(b" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        expected = base64.b64encode(
            hashlib.sha1(self.key + _GUID).digest()
        )  # RFC 6455's accept key
        if len(status) < 2 or status[1] != b"101":
            self._fail(ConnectionRefusedError(f"HTTP {status[1:2]!r}"))
        elif headers.get(b"sec-websocket-accept") != expected:
            self._fail(ConnectionError("bad Sec-WebSocket-Accept"))
        elif not self.opened.done():
            self.opened.set_result(None)

    def _frames(self, data: bytes) -> bytes:
        """Handles every whole frame in `data`; returns what is left of a partial one."""
        at, size = 0, len(data)
        while size - at >= 2:
            first, second = data[at], data[at + 1]
            if second & 0x80:
                self._fail(ConnectionError("masked frame from the server"))
                return b""
            length, head = second & 0x7F, 2
            if length == 126:
                if size - at < 4:
                    break
                length, head = int.from_bytes(data[at + 2 : at + 4], "big"), 4
            elif length == 127:
                if size - at < 10:
                    break
                length, head = int.from_bytes(data[at + 2 : at + 10], "big"), 10
            if size - at < head + length:
                break
            opcode = first & 0x0F
            if opcode == 0x1:  # text; the server never fragments these (one frame per message)
                if data.startswith(_BENCH_PREFIX, at + head):
                    self.on_event(_event_number(data[at + head : at + head + length]))
            elif opcode == 0x9:  # ping: pong with its payload
                self._write(_masked(0xA, data[at + head : at + head + length]))
            elif opcode == 0x8:  # close: echo its code, then the transport closes
                self._write(_masked(0x8, data[at + head : at + head + min(length, 2)]))
                self._fail(ConnectionResetError("closed by the server"))
                return b""
            at += head + length
        return data[at:]

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc or ConnectionResetError("closed before the handshake"))

    def _fail(self, exc: BaseException) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc)
        if self.transport is not None:
            self.transport.close()

    def close(self) -> None:
        self._write(_masked(0x8, (1000).to_bytes(2, "big")))
        if self.transport is not None:
            self.transport.close()


def _handshake(host: str, port: int, path: str, headers: dict[str, str]) -> tuple[bytes, bytes]:
    """An opening handshake request and its key."""
    key = base64.b64encode(os.urandom(16))
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key.decode()}",
        "Sec-WebSocket-Version: 13",
        "User-Agent: infou-bench",
    ] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode(), key


async def _watch(
    wid: int,
    host: str,
    port: int,
    path: str,
    token: str,
    count: int,
    reports: Any,
    stop: Any,
    connect_timeout: float,
) -> None:
    loop = asyncio.get_running_loop()
    headers = {"Authorization": f"Bearer {token}"}
    seen: Counter[int] = Counter()
    watchers: list[_Watcher] = []
    failures: Counter[str] = Counter()
    first: dict[int, float] = {}

    def on_event(k: int) -> None:
        seen[k] += 1
        if seen[k] == 1:
            first[k] = now()
        if seen[k] == len(watchers):  # this process's last watcher has it
            reports.put(("event", wid, k, now(), first[k]))

    gate = asyncio.Semaphore(64)  # handshakes in flight, per process

    async def open_one() -> None:
        async with gate:
            try:
                request, key = _handshake(host, port, path, headers)
                _, watcher = await asyncio.wait_for(
                    loop.create_connection(lambda: _Watcher(request, key, on_event), host, port),
                    connect_timeout,
                )
                await asyncio.wait_for(watcher.opened, connect_timeout)
            except Exception as exc:  # every kind of refusal is counted, none stops the run
                failures[type(exc).__name__] += 1
                return
            watchers.append(watcher)

    await asyncio.gather(*(open_one() for _ in range(count)))
    reports.put(("ready", wid, len(watchers), dict(failures)))
    await asyncio.to_thread(stop.wait)
    for watcher in watchers:
        watcher.close()
    await asyncio.sleep(0.5)


def watch_worker(
    wid: int,
    host: str,
    port: int,
    path: str,
    token: str,
    count: int,
    reports: Any,
    stop: Any,
    connect_timeout: float,
) -> None:
    """Entry point of a watcher process: `count` WebSockets, a report when each event is in."""
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    _run(_watch(wid, host, port, path, token, count, reports, stop, connect_timeout))


class WatcherFleet:
    """`total` WebSockets on one session, spread over `processes` processes."""

    def __init__(self, processes: int) -> None:
        self.processes = max(1, processes)
        self.reports: Any = _SPAWN.Queue()
        self.stop: Any = _SPAWN.Event()
        self.children: list[Any] = []
        self.connected: dict[int, int] = {}
        self.failures: Counter[str] = Counter()

    async def _get(self, timeout: float) -> tuple[Any, ...] | None:
        import queue

        try:
            item: tuple[Any, ...] = await asyncio.to_thread(self.reports.get, True, timeout)
        except queue.Empty:
            return None
        return item

    async def open(
        self, host: str, port: int, path: str, token: str, total: int, timeout: float = 600
    ) -> int:
        """Connects every watcher (or gives up on the slow ones); returns how many are open."""
        shares = [
            total // self.processes + (i < total % self.processes) for i in range(self.processes)
        ]
        for wid, share in enumerate(s for s in shares if s > 0):
            child = _SPAWN.Process(
                target=watch_worker,
                args=(wid, host, port, path, token, share, self.reports, self.stop, 60.0),
                daemon=True,
            )
            child.start()
            self.children.append(child)
        deadline = now() + timeout
        while len(self.connected) < len(self.children) and now() < deadline:
            item = await self._get(max(0.1, deadline - now()))
            if item is not None and item[0] == "ready":
                _, wid, connected, failures = item
                self.connected[wid] = connected
                self.failures.update(failures)
        return sum(self.connected.values())

    async def arrival(self, k: int, timeout: float) -> tuple[float, float] | None:
        """When the first and the last watcher got event `k` (None: not every watcher within
        `timeout`)."""
        waiting = {wid for wid, n in self.connected.items() if n > 0}
        first, last = math.inf, 0.0
        deadline = now() + timeout
        while waiting and now() < deadline:
            item = await self._get(max(0.01, deadline - now()))
            if item is None or item[0] != "event" or item[2] != k:
                continue  # a late report of an earlier event
            waiting.discard(item[1])
            last = max(last, item[3])
            first = min(first, item[4])
        return None if waiting else (first, last)

    def pids(self) -> list[int]:
        return [child.pid for child in self.children if child.pid is not None]

    async def close(self) -> None:
        self.stop.set()
        for child in self.children:
            await asyncio.to_thread(child.join, 10)
            if child.is_alive():
                child.kill()
