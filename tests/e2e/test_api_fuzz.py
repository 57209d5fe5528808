"""Schemathesis over the gateway's OpenAPI, against the real stack, with a session token:
every operation, bounded examples; no response is a 5xx and every response fits the schema.

This module runs a stack of its own: the fuzzer's sessions must not show in the shared
stack's counts.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.openapi.checks import RejectedPositiveData

from infou_devtools import engines
from infou_devtools.stack import Stack

REDIS_DB = 11
EXAMPLES_PER_OPERATION = 30


@pytest.fixture(scope="module")
async def stack(
    pg_server_url: str,
    module_nats_url: str,
    redis_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Stack]:
    data_dir = tmp_path_factory.mktemp("fuzz-stack")
    stack = Stack(
        data_dir=data_dir,
        gateway_port=engines.free_port(),
        database_url=pg_server_url,
        nats_url=module_nats_url,
        redis_url=urlunsplit(urlsplit(redis_url)._replace(path=f"/{REDIS_DB}")),
        database_name=f"infou_e2e_fz_{uuid.uuid4().hex[:8]}",
        extra_env={"INFOU_ENVIRONMENT": "test", "INFOU_LOG_JSON": "true"},
        echo=False,
        log_file=data_dir / "stack.log",
    )
    try:
        await stack.start(ready_timeout=120)
    except Exception:
        await stack.stop()
        raise
    yield stack
    await stack.stop()
    await engines.drop_database(pg_server_url, stack.database_name)


@dataclass
class Report:
    operations: int = 0
    cases: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    # Schema-valid requests a service refused on a rule across fields or state (e.g. an
    # action's required level): its domain code, never the schema layer's VALIDATION_ERROR.
    domain_refusals: Counter[str] = field(default_factory=Counter)


def _fuzz(base_url: str, headers: dict[str, str], session_id: str) -> Report:
    """Blocking: run in a thread, so the stack's log pumps keep running on the event loop."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    report = Report()
    for result in schema.get_all_operations():
        report.operations += 1
        operation = result.ok()  # type: ignore[union-attr]  # an Err raises its error here
        _fuzz_operation(operation, base_url, headers, session_id, report)
    return report


def _fuzz_operation(
    operation: Any, base_url: str, headers: dict[str, str], session_id: str, report: Report
) -> None:
    label = operation.label

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        report.cases += 1
        if case.path_parameters and "session_id" in case.path_parameters:
            # The token's own session, so the cases reach past the 404 of an unknown one.
            case.path_parameters["session_id"] = session_id
        response = case.call(base_url=base_url, headers=headers, timeout=15)
        report.statuses[response.status_code] += 1
        if response.status_code >= 500:
            report.server_errors.append(f"{label}: {response.status_code} {response.text}")
            return
        try:
            case.validate_response(response, headers=headers)
        except BaseExceptionGroup as group:  # schemathesis groups its failures
            failures = group.exceptions
            code = _error_code(response)
            if code not in ("", "VALIDATION_ERROR") and all(
                isinstance(f, RejectedPositiveData) for f in failures
            ):
                report.domain_refusals[f"{label}: {code}"] += 1
                return
            report.violations.append(f"{label}: {group}"[:600])
        except Exception as exc:
            report.violations.append(f"{label}: {type(exc).__name__}: {exc}"[:600])

    run()


def _error_code(response: Any) -> str:
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return ""


async def test_no_input_reaches_a_5xx_and_every_response_fits_the_schema(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    topic = (await api.get("/main-topics/ai-ml")).json()
    created = await api.post(
        "/sessions",
        json={
            "main_topic_id": topic["id"],
            "sub_topic_ids": [topic["sub_topics"][0]["id"]],
            "level": "beginner",
            "options": {"max_articles_per_subtopic": 1},
        },
    )
    assert created.status_code == 201, created.text
    headers = {"Authorization": f"Bearer {created.json()['access_token']}"}
    session_id = created.json()["session_id"]

    report = await asyncio.to_thread(_fuzz, stack.gateway_url, headers, session_id)
    print(
        f"schemathesis: {report.operations} operations, {report.cases} cases, "
        f"{sum(n for s, n in report.statuses.items() if s >= 500)} responses >= 500, "
        f"statuses {dict(sorted(report.statuses.items()))}, "
        f"domain refusals {dict(report.domain_refusals)}"
    )
    for line in sorted(set(report.violations)):
        print("VIOLATION", line.replace("\n", " | "))
    assert report.operations >= 10
    assert report.cases >= report.operations * 10
    assert report.server_errors == [], report.server_errors[:10]
    assert sorted(set(report.violations)) == [], sorted(set(report.violations))[:10]
