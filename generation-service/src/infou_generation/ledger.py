"""The LLM cost ledger: one row per provider call (and per cache hit), and what they add up to."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from infou_generation import repository
from infou_generation.llm import metrics

CallStatus = Literal[
    "ok",
    "rate_limited",
    "error",
    "invalid_output",
    "budget_refused",
    "cache_hit",
    # A call under way (its worker died if it stays so), and one cut by a cancellation.
    "started",
    "interrupted",
]

_ERROR_LIMIT = 2000


@dataclass(frozen=True)
class LedgerEntry:
    """One provider call (or one refused for budget, or one cache hit), priced."""

    provider: str
    model: str
    task: str
    status: CallStatus
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    latency_ms: int = 0
    attempt: int = 1
    error: str | None = None
    session_id: str | None = None
    generation_id: str | None = None
    # A cache hit: what the cached answer cost when it was generated.
    saved_usd: Decimal = Decimal(0)
    # Tokens and cost are our estimate (the call was cut before the provider reported usage).
    estimated: bool = False


@dataclass(frozen=True)
class LedgerTotals:
    calls: int
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    cost_usd: Decimal


async def record(session: AsyncSession, entry: LedgerEntry, *, row_id: int | None = None) -> int:
    """Adds the call to the ledger in the caller's transaction (or completes its `started` row
    `row_id`); the row's id."""
    values = _values(entry)
    if row_id is not None and await repository.update_llm_call(session, row_id, values):
        return row_id
    return await repository.add_llm_call(session, values)


def _values(entry: LedgerEntry) -> dict[str, object]:
    return {
        "provider": entry.provider,
        "model": entry.model[:100],
        "task": entry.task,
        "attempt": entry.attempt,
        "input_tokens": entry.input_tokens,
        "output_tokens": entry.output_tokens,
        "cached_tokens": entry.cached_tokens,
        "cost_usd": entry.cost_usd,
        "saved_usd": entry.saved_usd,
        "latency_ms": entry.latency_ms,
        "status": entry.status,
        "error": entry.error[:_ERROR_LIMIT] if entry.error else None,
        "session_id": entry.session_id,
        "generation_id": entry.generation_id,
        "estimated": entry.estimated,
    }


def observe(entry: LedgerEntry) -> None:
    """Counts the call in the metrics (whether or not the ledger row could be written)."""
    labels = (entry.provider, entry.task, entry.status)
    metrics.LLM_CALLS.labels(*labels).inc()
    if entry.status not in ("budget_refused", "cache_hit"):
        metrics.LLM_LATENCY.labels(*labels).observe(entry.latency_ms / 1000)
    for kind, count in (
        ("input", entry.input_tokens),
        ("output", entry.output_tokens),
        ("cached", entry.cached_tokens),
    ):
        if count:
            metrics.LLM_TOKENS.labels(entry.provider, entry.model, entry.task, kind).inc(count)
    if entry.cost_usd:
        metrics.LLM_COST.labels(entry.provider, entry.model, entry.task).inc(float(entry.cost_usd))
    if entry.saved_usd:
        metrics.CACHE_SAVED_USD.labels(entry.task).inc(float(entry.saved_usd))


async def totals(
    session: AsyncSession, *, session_id: str | None = None, generation_id: str | None = None
) -> LedgerTotals:
    """What the calls of one learning session or one generation cost."""
    if session_id is None and generation_id is None:
        raise ValueError("totals need a session_id or a generation_id")
    row = await repository.llm_call_totals(
        session, session_id=session_id, generation_id=generation_id
    )
    return LedgerTotals(int(row[0]), int(row[1]), int(row[2]), int(row[3]), Decimal(row[4]))
