"""The one gRPC client against a real server with the one server interceptor: a domain error
crosses the wire as gRPC's rich status and comes back as the same error."""

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
import structlog.testing

from infou_libs.errors import DomainError, NotFound, Unavailable
from infou_libs.grpc_client import ServiceClient
from infou_libs.grpc_server import SERVER_OPTIONS, DomainErrorInterceptor


async def _refuse(request: bytes, context: Any) -> bytes:  # noqa: ARG001 — gRPC handler signature
    if request == b"missing":
        raise NotFound("no topic with this slug", field="main_slug", code="TOPIC_NOT_FOUND")
    if request == b"broken":
        raise RuntimeError("asyncpg: password authentication failed")
    return request


@pytest.fixture
async def target() -> AsyncIterator[str]:
    server = grpc.aio.server(interceptors=[DomainErrorInterceptor("test")], options=SERVER_OPTIONS)
    handler = grpc.method_handlers_generic_handler(
        "test.Echo", {"Get": grpc.unary_unary_rpc_method_handler(_refuse)}
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}"
    await server.stop(None)


async def test_a_domain_error_comes_back_as_itself(target: str) -> None:
    client = ServiceClient(target, deadline=5.0)
    get = client.channel.unary_unary("/test.Echo/Get", None, None)
    try:
        assert await client.call(get, b"hello") == b"hello"
        with pytest.raises(NotFound) as caught:
            await client.call(get, b"missing")
        error = caught.value
        assert (error.code, error.field, error.message) == (
            "TOPIC_NOT_FOUND",
            "main_slug",
            "no topic with this slug",
        )
        assert error.status == grpc.StatusCode.NOT_FOUND
        # An unexpected failure stays INTERNAL and tells nothing of its cause.
        with pytest.raises(DomainError) as internal:
            await client.call(get, b"broken")
        assert internal.value.status == grpc.StatusCode.INTERNAL
        assert "password" not in internal.value.message
    finally:
        await client.close()


async def test_a_service_that_does_not_answer_is_unavailable() -> None:
    client = ServiceClient("127.0.0.1:1", deadline=2.0)
    get = client.channel.unary_unary("/test.Echo/Get", None, None)
    try:
        with pytest.raises(Unavailable) as caught:
            await client.call(get, b"hello")
        # Retried until the deadline, never reached: unavailable (503), not slow (504).
        assert caught.value.code == "UNAVAILABLE"
        assert caught.value.status == grpc.StatusCode.UNAVAILABLE
    finally:
        await client.close()


async def test_a_successful_call_logs_at_debug_and_a_failed_one_at_info(target: str) -> None:
    """Every call is in the latency histogram; only a failed (or slow) one is an INFO line."""
    client = ServiceClient(target, deadline=5.0)
    get = client.channel.unary_unary("/test.Echo/Get", None, None)
    try:
        with structlog.testing.capture_logs() as logs:
            await client.call(get, b"hello")
            with pytest.raises(NotFound):
                await client.call(get, b"missing")
    finally:
        await client.close()
    calls = [(entry["log_level"], entry["code"]) for entry in logs if entry["event"] == "grpc_call"]
    assert calls == [("debug", "OK"), ("info", "NOT_FOUND")]
