"""Trace context crosses NATS: the consumer's span continues the producer's trace."""

import asyncio
import uuid

from nats.aio.msg import Msg
from opentelemetry import trace
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

    async def handler(msg: Msg) -> None:
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
