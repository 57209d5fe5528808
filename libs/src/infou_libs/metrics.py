"""Prometheus metrics shared by every process, and the metrics endpoint of gRPC services."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

GRPC_SERVER_LATENCY = Histogram(
    "infou_grpc_server_duration_seconds",
    "gRPC server handling time",
    ["service", "method", "code"],
)
GRPC_CLIENT_LATENCY = Histogram(
    "infou_grpc_client_duration_seconds",
    "gRPC client call time, as the caller saw it",
    ["method", "code"],
)
EVENTS_PUBLISHED = Counter(
    "infou_events_published_total", "Outbox events relayed to JetStream", ["subject"]
)
EVENTS_CONSUMED = Counter(
    "infou_events_consumed_total",
    "Events handled by a consumer, by outcome (processed, duplicate, failed)",
    ["consumer", "outcome"],
)
OUTBOX_PENDING = Gauge("infou_outbox_pending", "Outbox rows not yet relayed", ["service"])
DB_POOL_IN_USE = Gauge(
    "infou_db_pool_in_use", "Database connections checked out of the pool", ["service"]
)
DB_POOL_CAPACITY = Gauge(
    "infou_db_pool_capacity", "Most connections the pool opens (size + overflow)", ["service"]
)
DEPENDENCY_UP = Gauge(
    "infou_dependency_up", "1 when a dependency answers, 0 when not", ["dependency"]
)


def start_metrics_server(port: int) -> int:
    """Serves /metrics on the given port (0 = a free one) and returns the port."""
    server, _thread = start_http_server(port)
    return int(server.server_port)
