"""Reads answered from this process's memory before routing (pure ASGI, the outermost HTTP layer).

A GET whose body the gateway served from memory before (the catalog's encoded responses in
cache.py, a session's status, curriculum or article in session_cache.py, by the same path and
raw query string) is answered here: the client gate (identity, API key, request rate), the
body as stored with headers built once, the request metric and sampled access log, and a server
span when the trace is sampled. Everything else, a miss, and anything this layer would answer
differently (a refusal, a CORS request with `Origin`), goes on to the FastAPI stack untouched,
which decides and answers as before: no routing, dependency injection, exception middleware or
per-request span objects for a read already held.

A session read is answered only for the token that opened it (the same constant-time check as
session_cache.py); any other token goes on to session-service through the stack (401/404).
Invalidation is the caches' own: an entry dropped by a CatalogChanged or progress event, or
expired, is a miss here.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.asgi import collect_request_attributes, set_status_code
from opentelemetry.trace import Span, SpanKind
from prometheus_client import Counter
from starlette.types import ASGIApp, Receive, Scope, Send

from infou_gateway.auth import token_from_header
from infou_gateway.cache import count_hit
from infou_gateway.observability import record_request
from infou_gateway.quotas import Admitted, ClientGate
from infou_gateway.security_headers import NO_STORE, security_headers
from infou_gateway.settings import GatewaySettings

MEMORY_READS = Counter(
    "infou_http_memory_reads_total", "GET requests answered from memory before routing"
)
_TRACER = trace.get_tracer(__name__)
_JSON = (b"content-type", b"application/json")
# The CORS middleware's mark on every answer to a request without Origin.
_VARY = (b"vary", b"Origin")


class MemoryReads:
    """Answers a GET held in memory before the stack it wraps; passes anything else on."""

    def __init__(self, app: ASGIApp, settings: GatewaySettings) -> None:
        self.app = app
        self.gate = ClientGate(app, settings)
        self.sample_ratio = settings.access_log_sample_ratio
        secure = security_headers(hsts=settings.public_url.startswith("https://"))
        self.public_tail = secure
        self.personal_tail = [*secure, NO_STORE]
        self._trace_fields: frozenset[bytes] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        state = getattr(scope["app"].state, "gateway", None)
        authorization: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"authorization" and authorization is None:  # the first, as Headers.get
                authorization = value
            elif name == b"origin":  # CORS headers: the stack's CORS middleware adds them
                await self.app(scope, receive, send)
                return
        path: str = scope["path"]
        query: bytes = scope["query_string"]
        session_id: str | None = None
        held = None if state is None else state.cache.held(path, query)
        if held is not None:
            route, area, body = held
            personal = authorization is not None
        else:
            token = token_from_header(authorization.decode("latin-1")) if authorization else ""
            read = state.session_reads.held(path, query, token) if state and token else None
            if read is None:
                await self.app(scope, receive, send)
                return
            route, area, logged_session, body = read
            session_id = logged_session or None
            personal = True
        outcome = await self.gate.admit(scope)
        if not isinstance(outcome, Admitted):
            # The stack's gate decides again (a refusal is not counted) and answers it.
            await self.app(scope, receive, send)
            return
        count_hit(area)
        headers = [(b"content-length", str(len(body)).encode()), _JSON, _VARY]
        verdict = outcome.verdict
        if verdict is not None:
            headers += [(k.lower().encode(), v.encode()) for k, v in verdict.headers().items()]
        headers += self.personal_tail if personal else self.public_tail
        span = self._span(scope, route)
        status = 500
        try:
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            status = 200
            await send({"type": "http.response.body", "body": body})
            MEMORY_READS.inc()
        finally:
            record_request(
                "GET", route, status, time.perf_counter() - start, session_id, self.sample_ratio
            )
            if span is not None:
                set_status_code(span, status)  # type: ignore[no-untyped-call]
                span.end()

    def _span(self, scope: Scope, route: str) -> Span | None:
        """The request's server span if the sampler keeps it (parent-based: a caller's sampled
        traceparent is followed), else None: an unsampled span is neither built nor kept."""
        fields = self._trace_fields
        if fields is None:
            # What the configured propagator reads (traceparent, tracestate, baggage, b3 ...).
            textmap = propagate.get_global_textmap()
            fields = self._trace_fields = frozenset(f.lower().encode() for f in textmap.fields)
        carrier = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope["headers"]
            if name in fields
        }
        parent = propagate.extract(carrier) if carrier else Context()
        span = _TRACER.start_span(f"GET {route}", context=parent, kind=SpanKind.SERVER)
        if not span.is_recording():
            return None
        attributes: dict[str, Any] = collect_request_attributes(scope)  # type: ignore[no-untyped-call]
        attributes["http.route"] = route
        span.set_attributes(attributes)
        return span


def install(app: FastAPI, settings: GatewaySettings) -> None:
    """Puts MemoryReads around the app's whole middleware stack (tracing included)."""
    build = app.build_middleware_stack

    def build_with_memory_reads() -> ASGIApp:
        return MemoryReads(build(), settings)

    app.build_middleware_stack = build_with_memory_reads  # type: ignore[method-assign]
