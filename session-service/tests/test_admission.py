"""AdmissionClient: what a lost ReserveAdmission answer leaves behind."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from infou_libs.errors import DomainError, Unavailable
from infou_session.admission import AdmissionClient


class Lost(DomainError):
    status = grpc.StatusCode.DEADLINE_EXCEEDED
    code = "DEADLINE_EXCEEDED"


class Refused(DomainError):
    status = grpc.StatusCode.RESOURCE_EXHAUSTED
    code = "BUDGET_EXHAUSTED"


class FakeClient:
    """Stands for the gRPC client: ReserveAdmission raises `reserve_error`; calls are recorded."""

    def __init__(self, reserve_error: DomainError) -> None:
        self.reserve_error = reserve_error
        self.calls: list[tuple[str, Any]] = []

    async def call(self, method: Any, request: Any) -> Any:
        self.calls.append((method, request))
        if method == "ReserveAdmission":
            raise self.reserve_error
        return None


class FakeStub:
    ReserveAdmission = "ReserveAdmission"
    ReleaseAdmission = "ReleaseAdmission"


def _client(error: DomainError) -> tuple[AdmissionClient, FakeClient]:
    admission = AdmissionClient("127.0.0.1:1", 0.1)
    fake = FakeClient(error)
    admission._client = fake  # type: ignore[assignment]
    admission._stub = FakeStub()  # type: ignore[assignment]
    return admission, fake


async def test_a_reserve_whose_answer_is_lost_releases_what_it_may_have_held() -> None:
    admission, fake = _client(Lost("deadline exceeded"))
    with pytest.raises(Unavailable):
        await admission.reserve("sess_lost", 2, "client", 0.1)
    assert [method for method, _ in fake.calls] == ["ReserveAdmission", "ReleaseAdmission"]
    assert fake.calls[1][1].reference_id == "sess_lost"


async def test_a_decided_refusal_holds_nothing_and_releases_nothing() -> None:
    admission, fake = _client(Refused("over budget"))
    with pytest.raises(Refused):
        await admission.reserve("sess_refused", 2, "client", 0.1)
    assert [method for method, _ in fake.calls] == ["ReserveAdmission"]
