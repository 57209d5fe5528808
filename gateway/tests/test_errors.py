"""One mapping from gRPC status to HTTP, with a JSON body that names the bad field."""

import grpc
import httpx
import pytest
from fastapi import FastAPI, Query

from infou_gateway import errors
from infou_libs.errors import DomainError, InvalidArgument
from infou_libs.grpc_client import rich_status


def _app(exc: Exception | None = None) -> FastAPI:
    app = FastAPI()
    errors.install(app)

    @app.get("/boom")
    async def boom() -> None:
        assert exc is not None
        raise exc

    @app.get("/items")
    async def items(limit: int = Query(20, ge=1, le=100)) -> dict[str, int]:
        return {"limit": limit}

    return app


def _rpc_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(
        code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details, debug_error_string=None
    )


def _domain_rpc_error(error: DomainError) -> grpc.aio.AioRpcError:
    """The call error a service's interceptor makes of `error` (gRPC's rich status)."""
    status = rich_status(error)
    return grpc.aio.AioRpcError(
        status.code,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(*status.trailing_metadata),
        details=status.details,
        debug_error_string=None,
    )


async def _get(app: FastAPI, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.get(path)


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, 422),
        (grpc.StatusCode.NOT_FOUND, 404),
        (grpc.StatusCode.UNAUTHENTICATED, 401),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 429),
        (grpc.StatusCode.OUT_OF_RANGE, 410),
        (grpc.StatusCode.UNAVAILABLE, 503),
        (grpc.StatusCode.DEADLINE_EXCEEDED, 504),
        (grpc.StatusCode.UNIMPLEMENTED, 501),
        (grpc.StatusCode.INTERNAL, 502),
    ],
)
async def test_grpc_status_becomes_http_status(code: grpc.StatusCode, status: int) -> None:
    reply = await _get(_app(_rpc_error(code, "nope")), "/boom")
    assert reply.status_code == status
    assert "code" in reply.json()["error"]


def test_every_grpc_status_is_mapped_on_purpose() -> None:
    assert set(errors.GRPC_TO_HTTP) == set(grpc.StatusCode) - {grpc.StatusCode.OK}


async def test_unavailable_tells_the_client_when_to_retry() -> None:
    reply = await _get(_app(_rpc_error(grpc.StatusCode.UNAVAILABLE, "down")), "/boom")
    assert reply.status_code == 503
    assert int(reply.headers["retry-after"]) > 0
    assert reply.json()["error"]["code"] == "SERVICE_UNAVAILABLE"


async def test_method_not_allowed_names_the_allowed_methods() -> None:
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        reply = await client.post("/items")
    assert reply.status_code == 405
    assert reply.headers["allow"] == "GET"
    assert reply.json()["error"]["code"] == "METHOD_NOT_ALLOWED"


async def test_domain_error_code_and_field_reach_the_client() -> None:
    exc = _domain_rpc_error(InvalidArgument("unknown level 'master'", field="level"))
    reply = await _get(_app(exc), "/boom")
    assert reply.status_code == 422
    assert reply.json() == {
        "error": {"code": "INVALID_ARGUMENT", "message": "unknown level 'master'", "field": "level"}
    }


async def test_internal_details_do_not_leak() -> None:
    exc = _rpc_error(grpc.StatusCode.INTERNAL, "asyncpg: password authentication failed")
    reply = await _get(_app(exc), "/boom")
    assert reply.status_code == 502
    assert "password" not in reply.text


async def test_validation_error_names_the_parameter() -> None:
    for query in ("limit=0", "limit=101", "limit=ten"):
        reply = await _get(_app(), f"/items?{query}")
        assert reply.status_code == 422
        error = reply.json()["error"]
        assert error["code"] == "VALIDATION_ERROR"
        assert error["field"] == "limit"


async def test_unexpected_exception_is_a_json_500_without_details() -> None:
    reply = await _get(_app(RuntimeError("secret internals")), "/boom")
    assert reply.status_code == 500
    assert reply.json()["error"]["code"] == "INTERNAL_ERROR"
    assert "secret" not in reply.text
