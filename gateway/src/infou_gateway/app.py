"""The FastAPI application: the public REST/WebSocket contract in front of the gRPC services."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from prometheus_client import start_http_server
from redis.asyncio import Redis

from infou_gateway import errors, memory_reads
from infou_gateway.apikeys import ApiKeys
from infou_gateway.cache import ResponseCache
from infou_gateway.clients import ServiceClients
from infou_gateway.events import cache_invalidation_consumer, watch_session_progress
from infou_gateway.hardening import InputHardening, document_text_rule
from infou_gateway.observability import RequestRecorder
from infou_gateway.quotas import ClientGate, Quotas
from infou_gateway.routes import (
    articles,
    catalog,
    health,
    levels,
    probes,
    sessions,
    subtopics,
    ws,
)
from infou_gateway.routes.feedback import router as feedback_router
from infou_gateway.security_headers import SecurityHeaders
from infou_gateway.session_cache import SessionReads
from infou_gateway.settings import GatewaySettings
from infou_gateway.state import GatewayState
from infou_gateway.wslimits import ConnectionSlots
from infou_libs.logging import get_logger
from infou_libs.messaging import DurableConsumer, connect, ensure_streams
from infou_libs.messaging import close as close_nats

log = get_logger(__name__)


async def _attach_nats(state: GatewayState, consumers: list[DurableConsumer]) -> None:
    """Connects to NATS (retrying every few seconds) and starts the gateway's consumers."""
    delay = 1.0
    while True:
        try:
            # Inline, not in wait_for's own task: shutdown's cancel must reach nats-py's loop.
            async with asyncio.timeout(5.0):
                nc = await connect(state.settings.nats_url, "infou-gateway")
            js = nc.jetstream()
            await ensure_streams(js)
            consumer = cache_invalidation_consumer(js, state.cache)
            await consumer.start()
            await watch_session_progress(nc, state.session_reads)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("nats_unavailable", error=str(exc) or type(exc).__name__, retry_in_s=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
            continue
        consumers.append(consumer)
        state.nc = nc
        log.info("nats_attached")
        return


async def _cancel_until_done(task: asyncio.Task[None]) -> None:
    """Cancels a task and waits for it to end, cancelling again if a cancellation is lost.

    nats-py's connect loop can lose one: a cancel landing as a refused connection completes is
    swallowed by the asyncio.wait_for inside it (Python 3.11), and the loop then retries for
    ever, holding shutdown (seen as the hardening tests hanging in teardown)."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.2)
    with contextlib.suppress(asyncio.CancelledError):
        await task


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        clients = ServiceClients(settings)
        cache = ResponseCache(
            Redis.from_url(settings.redis_url, socket_timeout=1.0, socket_connect_timeout=1.0),
            enabled=settings.cache_enabled,
            local_seconds=settings.local_cache_seconds,
        )
        state = GatewayState(
            settings,
            clients,
            cache,
            None,
            quotas=Quotas(cache.redis, settings.rate_limit_sync_seconds),
            api_keys=ApiKeys(cache.redis, settings.api_key_cache_seconds),
            ws_slots=ConnectionSlots(cache.redis),
            session_reads=SessionReads(
                cache.redis,
                enabled=settings.cache_enabled,
                max_entries=settings.session_cache_max_entries,
            ),
        )
        app.state.gateway = state
        state.ws.start()
        consumers: list[DurableConsumer] = []
        # Metrics are for the cluster, not the public: their own port, like the services'.
        metrics_server, _thread = start_http_server(settings.metrics_port, addr=settings.host)
        app.state.metrics_port = int(metrics_server.server_port)
        # NATS may come up after the gateway: attach in the background, /health names it until then.
        attach = asyncio.create_task(_attach_nats(state, consumers), name="nats-attach")
        log.info("gateway_ready", port=settings.port, metrics_port=app.state.metrics_port)
        try:
            yield
        finally:
            await _cancel_until_done(attach)
            await state.ws.stop()
            for consumer in consumers:
                await consumer.stop()
            if state.nc is not None:
                await close_nats(state.nc)
            await clients.close()
            await state.quotas.close()
            await cache.redis.aclose()
            metrics_server.shutdown()
            metrics_server.server_close()

    app = FastAPI(
        title="InfoU API",
        version=settings.version,
        description="Personalised LLM-written curricula at five levels, written in the background.",
        lifespan=lifespan,
        docs_url="/docs" if settings.serves_docs else None,
        redoc_url="/redoc" if settings.serves_docs else None,
        openapi_url="/openapi.json" if settings.serves_docs else None,
    )
    # Innermost: bodies are bounded and checked before anything parses them.
    app.add_middleware(InputHardening, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["GET", "POST"],
        allow_headers=["Authorization", "Content-Type", "X-API-Key", "Idempotency-Key"],
    )
    # Registered first, so it runs inside the request recorder: refusals are timed and counted.
    app.add_middleware(ClientGate, settings=settings)
    app.add_middleware(RequestRecorder, sample_ratio=settings.access_log_sample_ratio)
    # Outermost: every response, refusals included, carries the security headers.
    app.add_middleware(SecurityHeaders, hsts=settings.public_url.startswith("https://"))
    errors.install(app)
    app.include_router(health.router)
    app.include_router(probes.router)
    app.include_router(levels.router)
    app.include_router(catalog.router)
    app.include_router(subtopics.router)
    app.include_router(sessions.router)
    app.include_router(articles.router)
    app.include_router(feedback_router)
    app.include_router(ws.router)

    base_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_text_rule(base_openapi())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    FastAPIInstrumentor.instrument_app(app, excluded_urls="metrics,health,live,ready")
    memory_reads.install(app, settings)  # reads held in memory, before the stack above
    ws.install(app)  # last: around everything, tracing included
    return app
