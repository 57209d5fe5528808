"""OpenTelemetry tracing: HTTP → gRPC → NATS, with W3C traceparent in message headers."""

from __future__ import annotations

import os
from collections.abc import Mapping

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, Sampler, TraceIdRatioBased

_configured = False


def configure_tracing(
    service: str, otlp_endpoint: str = "", sample_ratio: float | None = None
) -> None:
    """Installs the tracer provider; spans are exported over OTLP (gRPC) when an endpoint is set.

    The standard OpenTelemetry variables work as documented: OTEL_EXPORTER_OTLP_ENDPOINT (or
    …_TRACES_ENDPOINT), …_HEADERS, …_CERTIFICATE, …_TIMEOUT, …_COMPRESSION, OTEL_SERVICE_NAME,
    OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER(_ARG), OTEL_TRACES_EXPORTER=none and
    OTEL_SDK_DISABLED. `otlp_endpoint` (INFOU_OTEL_EXPORTER_OTLP_ENDPOINT) is an alias that wins.
    `sample_ratio` (INFOU_TRACE_SAMPLE_RATIO) samples that share of new traces and follows the
    caller's decision for the rest; OTEL_TRACES_SAMPLER, when set, wins over it.
    """
    global _configured
    if _configured:
        return
    trace.set_tracer_provider(tracer_provider(service, otlp_endpoint, sample_ratio))
    _configured = True


def tracer_provider(
    service: str, otlp_endpoint: str = "", sample_ratio: float | None = None
) -> TracerProvider:
    # OTEL_SERVICE_NAME, when set, names the service; Resource.create reads it.
    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": f"infou-{service}"}
    provider = TracerProvider(
        resource=Resource.create(attributes), sampler=trace_sampler(sample_ratio)
    )
    if _exporting(otlp_endpoint):
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        # endpoint=None: the exporter reads OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT and friends.
        exporter = OTLPSpanExporter(endpoint=otlp_endpoint or None)
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def trace_sampler(sample_ratio: float | None) -> Sampler | None:
    """Parent-based ratio sampling: a trace the caller sampled is recorded here too, a new one
    with probability `sample_ratio`. None (the SDK reads OTEL_TRACES_SAMPLER) when that variable
    is set or no ratio is given."""
    if sample_ratio is None or os.environ.get("OTEL_TRACES_SAMPLER", "").strip():
        return None
    return ParentBased(TraceIdRatioBased(sample_ratio))


def _exporting(otlp_endpoint: str) -> bool:
    env = os.environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return bool(
        otlp_endpoint
        or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    )


def tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)


def inject_headers(headers: dict[str, str] | None = None) -> dict[str, str]:
    """Adds the current trace context (traceparent, tracestate) to message headers."""
    carrier: dict[str, str] = dict(headers or {})
    propagate.inject(carrier)
    return carrier


def extract_context(headers: Mapping[str, str] | None) -> Context:
    """The trace context a message carried, to parent the consumer's span."""
    return propagate.extract(dict(headers or {}))


def current_traceparent() -> str:
    return inject_headers().get("traceparent", "")
