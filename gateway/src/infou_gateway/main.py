"""Gateway process: `python -m infou_gateway`."""

from __future__ import annotations

import asyncio
import socket
import sys
from types import FrameType

import uvicorn
from fastapi import FastAPI

from infou_gateway.app import create_app
from infou_gateway.settings import GatewaySettings
from infou_gateway.state import GatewayState
from infou_libs.logging import configure_logging, get_logger
from infou_libs.telemetry import configure_tracing

log = get_logger(__name__)

# Between SIGTERM and uvicorn's own shutdown: WebSockets get their 1001 out first (uvicorn
# would close them with 1012), /ready is already 503.
DRAIN_DELAY_SECONDS = 1.0
# Requests in flight get this long to finish once the listener is closed; the pod's
# terminationGracePeriodSeconds (deploy/k8s) leaves room for it and the preStop pause.
GRACEFUL_SHUTDOWN_SECONDS = 20


class DrainingServer(uvicorn.Server):
    """uvicorn that drains on SIGTERM: not ready, WebSockets going away, then a graceful stop."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self.app = app

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        state: GatewayState | None = getattr(self.app.state, "gateway", None)
        if state is None or state.draining.is_set():
            super().handle_exit(sig, frame)
            return
        loop = asyncio.get_running_loop()
        loop.call_soon_threadsafe(self._drain, state, sig, frame)

    def _drain(self, state: GatewayState, sig: int, frame: FrameType | None) -> None:
        log.info("gateway_draining")
        state.draining.set()
        asyncio.get_running_loop().call_later(DRAIN_DELAY_SECONDS, super().handle_exit, sig, frame)


def run() -> None:
    try:
        settings = GatewaySettings()
    except Exception as exc:
        print(f"infou-gateway: invalid settings: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    configure_logging("gateway", settings.log_level, settings.log_json)
    configure_tracing("gateway", settings.otel_exporter_otlp_endpoint, settings.trace_sample_ratio)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        # Forwarded headers count only from INFOU_TRUSTED_PROXIES (never an implicit 127.0.0.1).
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=",".join(settings.trusted_proxies),
        ws=settings.ws_protocol,
        ws_max_size=settings.ws_max_message_bytes,
        ws_per_message_deflate=settings.ws_per_message_deflate,
    )
    DrainingServer(config, app).run(
        sockets=[shared_socket(settings)] if settings.reuse_port else None
    )


def shared_socket(settings: GatewaySettings) -> socket.socket:
    """The listening address bound with SO_REUSEPORT (uvicorn listens on it once started)."""
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((settings.host, settings.port))
    return sock
