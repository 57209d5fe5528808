"""The yardstick: a bare FastAPI endpoint returning static JSON of a requested size.

The bench starts it beside the stack (same machine, same run) and measures it under the same
load, so each scenario's throughput is reported as a ratio to what the framework alone does.
"""

from __future__ import annotations

import functools

from fastapi import FastAPI, Response

app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


@functools.cache
def _body(size: int) -> bytes:
    head, tail = b'{"items":["', b'"]}'
    return head + b"x" * max(0, size - len(head) - len(tail)) + tail


@app.get("/static/{size}")
async def static(size: int) -> Response:
    return Response(_body(min(size, 4 * 1024 * 1024)), media_type="application/json")
