"""Gateway process: `python -m infou_gateway`."""

from __future__ import annotations

import sys

import uvicorn

from infou_gateway.app import create_app
from infou_gateway.settings import GatewaySettings
from infou_libs.logging import configure_logging
from infou_libs.telemetry import configure_tracing


def run() -> None:
    try:
        settings = GatewaySettings()
    except Exception as exc:
        print(f"infou-gateway: invalid settings: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    configure_logging("gateway", settings.log_level, settings.log_json)
    configure_tracing("gateway", settings.otel_exporter_otlp_endpoint)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
        # Forwarded headers count only from INFOU_TRUSTED_PROXIES (never an implicit 127.0.0.1).
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=",".join(settings.trusted_proxies),
    )
