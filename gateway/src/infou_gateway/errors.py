"""The one place where failures become HTTP: a domain error (raised by a route, or by a service
and carried here by gRPC's rich status) → HTTP status and a JSON body."""

from __future__ import annotations

from typing import Any

import grpc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from infou_libs.errors import DomainError
from infou_libs.grpc_client import domain_error_from
from infou_libs.logging import get_logger

log = get_logger(__name__)

# Every status, on purpose: what a client sent is a 4xx, what failed on our side a 5xx.
GRPC_TO_HTTP: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: 422,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.OUT_OF_RANGE: 410,
    grpc.StatusCode.CANCELLED: 503,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    # A service failed: the gateway is fine, its upstream is not.
    grpc.StatusCode.UNKNOWN: 502,
    grpc.StatusCode.INTERNAL: 502,
    grpc.StatusCode.DATA_LOSS: 502,
}
# A client told "unavailable" retries after this many seconds.
RETRY_AFTER_SECONDS = "5"


def error_body(code: str, message: str, field: str | None = None, **extra: Any) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if field:
        error["field"] = field
    error.update(extra)
    return {"error": error}


def error_response(exc: DomainError, headers: dict[str, str] | None = None) -> JSONResponse:
    """The HTTP answer to a domain error; what a backend failure was is never told."""
    status = GRPC_TO_HTTP.get(exc.status, 502)
    headers = dict(headers or {})
    code, message = exc.code, exc.message or exc.status.name
    if status >= 500:
        log.warning("upstream_error", grpc_code=exc.status.name, error=message)
        if status == 503:
            code, message = "SERVICE_UNAVAILABLE", "a backend service is unavailable"
            headers["Retry-After"] = RETRY_AFTER_SECONDS
        elif status == 502:
            code, message = "UPSTREAM_ERROR", "a backend service failed"
    body = error_body(code, message, exc.field)
    if exc.retry_after is not None:  # e.g. BUDGET_EXHAUSTED: until the budget day turns
        body["error"]["retry_after"] = exc.retry_after
        headers["Retry-After"] = str(exc.retry_after)
    return JSONResponse(body, status_code=status, headers=headers or None)


def grpc_error_response(exc: grpc.aio.AioRpcError) -> JSONResponse:
    return error_response(domain_error_from(exc))


def _field_of(loc: Any) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or ".".join(str(p) for p in loc)


def install(app: FastAPI) -> None:
    @app.exception_handler(grpc.aio.AioRpcError)
    async def on_grpc_error(_request: Request, exc: grpc.aio.AioRpcError) -> JSONResponse:
        return grpc_error_response(exc)

    @app.exception_handler(DomainError)
    async def on_domain_error(_request: Request, exc: DomainError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        field = _field_of(first.get("loc", ()))
        details = [
            {"field": _field_of(e.get("loc", ())), "message": str(e.get("msg", ""))} for e in errors
        ]
        body = error_body(
            "VALIDATION_ERROR", f"{field}: {first.get('msg')}", field, details=details
        )
        return JSONResponse(body, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "HTTP_ERROR")
        # Keeps the exception's headers: a 405 names the allowed methods in `Allow`.
        return JSONResponse(
            error_body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(Exception)
    async def on_unhandled(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled_error", error=str(exc))
        return JSONResponse(error_body("INTERNAL_ERROR", "internal error"), status_code=500)
