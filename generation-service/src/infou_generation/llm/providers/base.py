"""What every provider offers the router, and the pieces they share."""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from infou_generation.llm.types import Completion, LLMRequest, ProviderName

# How much of a bad answer is shown back to the model in the repair turn.
_REPAIR_ECHO_LIMIT = 12_000


@dataclass(frozen=True)
class Repair:
    """A second chance: the answer that failed and why."""

    previous_output: str
    problem: str


class Provider(Protocol):
    """One LLM backend. `complete` makes exactly one request (no retries of its own)."""

    name: ProviderName
    model: str
    # False for deterministic providers, where asking again gives the same answer.
    repairable: bool

    async def complete(self, request: LLMRequest, repair: Repair | None = None) -> Completion: ...

    async def aclose(self) -> None: ...


def repair_instruction(request: LLMRequest, repair: Repair) -> str:
    """The follow-up turn that asks for a corrected answer."""
    return (
        f"Your previous reply was not a valid `{request.schema_name}` JSON object: "
        f"{repair.problem}\n"
        "Reply again with only the corrected JSON object, complete and valid against the "
        "schema, and nothing else."
    )


def echoed_output(repair: Repair) -> str:
    """The failed answer as the assistant turn of the repair conversation (never empty)."""
    return repair.previous_output[:_REPAIR_ECHO_LIMIT] or "(empty reply)"


def schema_instruction(request: LLMRequest) -> str:
    """For servers without schema-constrained output: the schema spelled out in the prompt."""
    schema = json.dumps(request.json_schema, ensure_ascii=False, separators=(",", ":"))
    return (
        "\n\nReply with exactly one JSON object and nothing else. It must be valid against "
        f"this JSON Schema:\n<output_schema>{schema}</output_schema>"
    )


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """Reads retry-after-ms / retry-after (seconds or an HTTP date) from response headers."""
    if not headers:
        return None
    lowered = {k.lower(): v for k, v in headers.items()}
    raw_ms = lowered.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000)
        except ValueError:
            pass
    raw = lowered.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
