"""Domain errors: raised by services, turned into gRPC's rich status by one interceptor
(grpc_server) and back into the same error by the one client (grpc_client.domain_error_from)."""

from __future__ import annotations

import grpc


class DomainError(Exception):
    """Base of every error a use case may raise on purpose."""

    status = grpc.StatusCode.INTERNAL
    code = "INTERNAL_ERROR"

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        code: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        # Seconds after which trying again may succeed (HTTP Retry-After).
        self.retry_after = retry_after
        if code is not None:
            self.code = code


class NotFound(DomainError):
    status = grpc.StatusCode.NOT_FOUND
    code = "NOT_FOUND"


class InvalidArgument(DomainError):
    status = grpc.StatusCode.INVALID_ARGUMENT
    code = "INVALID_ARGUMENT"


class AlreadyExists(DomainError):
    status = grpc.StatusCode.ALREADY_EXISTS
    code = "ALREADY_EXISTS"


class Unauthenticated(DomainError):
    status = grpc.StatusCode.UNAUTHENTICATED
    code = "UNAUTHENTICATED"


class FailedPrecondition(DomainError):
    status = grpc.StatusCode.FAILED_PRECONDITION
    code = "FAILED_PRECONDITION"


class Gone(DomainError):
    """The resource existed but has expired (HTTP 410)."""

    status = grpc.StatusCode.OUT_OF_RANGE
    code = "GONE"


class BudgetExceeded(DomainError):
    status = grpc.StatusCode.RESOURCE_EXHAUSTED
    code = "LLM_BUDGET_EXCEEDED"


class Unimplemented(DomainError):
    """An RPC of the contract whose use case is not built yet (HTTP 501)."""

    status = grpc.StatusCode.UNIMPLEMENTED
    code = "NOT_IMPLEMENTED"


class RateLimited(DomainError):
    status = grpc.StatusCode.RESOURCE_EXHAUSTED
    code = "RATE_LIMITED"


class Unavailable(DomainError):
    """Another service did not answer, or not in time; the caller may try again (HTTP 503)."""

    status = grpc.StatusCode.UNAVAILABLE
    code = "SERVICE_UNAVAILABLE"
