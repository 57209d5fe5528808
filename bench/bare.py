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


def main() -> None:
    """`python -m bench.bare PORT`: one process of the bare endpoint on a port it may share
    (SO_REUSEPORT, as the gateway's processes share theirs), served as the gateway is (uvicorn,
    uvloop, httptools)."""
    import socket
    import sys

    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", int(sys.argv[1])))
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
