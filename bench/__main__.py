"""Benchmarks against a real stack: `python -m bench [latency] [--requests N] [--concurrency C]`."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from infou_devtools import engines
from infou_devtools.stack import Stack


async def _hammer(
    client: httpx.AsyncClient, path: str, requests: int, concurrency: int
) -> list[float]:
    timings: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(requests):
        queue.put_nowait(i)

    async def worker() -> None:
        while not queue.empty():
            queue.get_nowait()
            start = time.perf_counter()
            reply = await client.get(path)
            timings.append((time.perf_counter() - start) * 1000)
            if reply.status_code != 200:
                raise RuntimeError(f"{path} answered {reply.status_code}: {reply.text[:200]}")

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return timings


def _row(path: str, timings: list[float], elapsed: float) -> str:
    q = statistics.quantiles(timings, n=100)
    return (
        f"{path:<56} n={len(timings):<5} rps={len(timings) / elapsed:7.1f}  "
        f"p50={q[49]:6.1f}ms  p95={q[94]:6.1f}ms  p99={q[98]:6.1f}ms"
    )


async def latency(requests: int, concurrency: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(
            data_dir=Path(tmp),
            gateway_port=engines.free_port(),
            fast_engines=True,
            echo=False,
            log_file=Path(tmp) / "stack.log",
            # One client IP sends thousands of requests: the per-IP limit would refuse them.
            extra_env={"INFOU_RATE_LIMIT_PER_MINUTE": "0"},
        )
        await stack.start()
        try:
            async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=10) as client:
                await _hammer(client, "/levels", 50, 5)  # warm-up
                for path in (
                    "/levels",
                    "/main-topics?limit=20",
                    "/main-topics?category=tech&popular=true",
                    "/main-topics/ai-ml",
                    "/sub-topics/curated?main_slug=ai-ml&level=intermediate",
                    "/health",
                ):
                    start = time.perf_counter()
                    timings = await _hammer(client, path, requests, concurrency)
                    print(_row(path, timings, time.perf_counter() - start))
        finally:
            await stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench")
    parser.add_argument("name", nargs="?", default="latency", choices=["latency"])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(latency(args.requests, args.concurrency))


if __name__ == "__main__":
    main()
