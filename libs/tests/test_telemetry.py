"""Trace context crosses NATS: the consumer's span continues the producer's trace."""

import asyncio
import os
import sys
import uuid
from pathlib import Path

import grpc
from nats.aio.msg import Msg
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from infou_libs.messaging import EVENTS_STREAM, DurableConsumer, connect, ensure_streams, publish
from infou_libs.telemetry import extract_context, inject_headers


def _provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def test_inject_then_extract_keeps_the_trace() -> None:
    provider, _ = _provider()
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("producer") as span:
        headers = inject_headers({"x": "1"})
    assert headers["x"] == "1"
    assert headers["traceparent"].split("-")[1] == format(span.get_span_context().trace_id, "032x")
    ctx = extract_context(headers)
    assert (
        trace.get_current_span(ctx).get_span_context().trace_id == span.get_span_context().trace_id
    )


async def test_consumer_span_continues_the_publishers_trace(nats_url: str) -> None:
    provider, _ = _provider()
    trace.set_tracer_provider(provider)  # the first provider set in this process wins
    nc = await connect(nats_url, "trace-test")
    js = nc.jetstream()
    await ensure_streams(js)
    subject = f"events.trace{uuid.uuid4().hex[:8]}.done"
    seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def handler(msg: Msg) -> None:  # noqa: ARG001 — callback signature
        seen.set_result(trace.get_current_span().get_span_context().trace_id)

    consumer = DurableConsumer(
        js, EVENTS_STREAM, f"trace-{uuid.uuid4().hex[:8]}", [subject], handler
    )
    await consumer.start()
    try:
        with trace.get_tracer("producer").start_as_current_span("publish") as span:
            await publish(js, subject, b"x")
            trace_id = span.get_span_context().trace_id
        assert trace_id != 0, "a real tracer provider must be active"
        assert await asyncio.wait_for(seen, 10) == trace_id
    finally:
        await consumer.stop()
        await nc.close()


async def test_the_standard_otel_variables_configure_the_export(tmp_path: Path) -> None:
    """OTEL_EXPORTER_OTLP_ENDPOINT and OTEL_SERVICE_NAME alone send spans to a collector."""
    received: list[trace_service_pb2.ExportTraceServiceRequest] = []

    class Collector(trace_service_pb2_grpc.TraceServiceServicer):
        async def Export(
            self,
            request: trace_service_pb2.ExportTraceServiceRequest,
            context: object,  # noqa: ARG002 — gRPC servicer signature
        ) -> trace_service_pb2.ExportTraceServiceResponse:
            received.append(request)
            return trace_service_pb2.ExportTraceServiceResponse()

    server = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Collector(), server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    script = (
        "from infou_libs.telemetry import configure_tracing, tracer\n"
        "from opentelemetry import trace\n"
        "configure_tracing('probe')\n"
        "with tracer('t').start_as_current_span('otel-env-span'):\n"
        "    pass\n"
        "trace.get_tracer_provider().shutdown()\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "INFOU_OTEL"))} | {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "OTEL_SERVICE_NAME": "infou-from-env",
    }
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, env=env, cwd=tmp_path
        )
        assert await asyncio.wait_for(process.wait(), 60) == 0
    finally:
        await server.stop(None)
    spans = [
        (resource.resource, span.name)
        for request in received
        for resource in request.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]
    assert [name for _, name in spans] == ["otel-env-span"]
    attributes = {a.key: a.value.string_value for a in spans[0][0].attributes}
    assert attributes["service.name"] == "infou-from-env"


def test_ratio_sampling_follows_a_sampled_caller() -> None:
    """INFOU_TRACE_SAMPLE_RATIO 0: no new trace is recorded, a sampled caller's always is."""
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    from infou_libs.telemetry import trace_sampler

    sampler = trace_sampler(0.0)
    assert sampler is not None
    provider = TracerProvider(sampler=sampler)
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("root") as root:
        assert not root.is_recording()
    caller = SpanContext(
        trace_id=0x1234, span_id=0x99, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED)
    )
    parent = trace.set_span_in_context(NonRecordingSpan(caller))
    with tracer.start_as_current_span("child", context=parent) as child:
        assert child.is_recording()
    assert trace_sampler(None) is None  # the SDK's own choice (OTEL_TRACES_SAMPLER)
