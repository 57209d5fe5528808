"""The daily LLM budget, enforced before a call: reserve the worst case, then settle the real cost.

Safe across concurrent calls and processes because a reservation is one conditional UPDATE of
the day's row (`spent + reserved + amount <= limit`), which Postgres serialises on the row lock
and re-checks after waiting. A reservation whose process died is given back once it expires.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from typing import cast
from zoneinfo import ZoneInfo

from sqlalchemy import Table, delete, func, insert, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infou_generation import admission
from infou_generation.llm import metrics
from infou_generation.llm.types import BudgetExceededError
from infou_generation.models import LLMBudgetDay, LLMBudgetReservation
from infou_libs.db import unit_of_work
from infou_libs.logging import get_logger

log = get_logger(__name__)

MICRO_USD = Decimal("0.000001")


def usd(amount: Decimal) -> Decimal:
    """Rounds up to the ledger's precision (a millionth of a dollar)."""
    return amount.quantize(MICRO_USD, rounding=ROUND_CEILING)


@dataclass(frozen=True)
class Reservation:
    id: str
    day: dt.date
    amount_usd: Decimal
    # The session or generation the call is for: its admission is charged when it settles.
    reference_id: str | None = None


@dataclass(frozen=True)
class BudgetStatus:
    day: dt.date
    limit_usd: Decimal
    spent_usd: Decimal
    reserved_usd: Decimal

    @property
    def ratio(self) -> float:
        """Spend as a share of the limit (1.0 when the limit is zero)."""
        return float(self.spent_usd / self.limit_usd) if self.limit_usd else 1.0


class DailyBudget:
    """One budget day per calendar day in the configured time zone."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        limit_usd: Decimal,
        *,
        warn_ratio: float = 0.8,
        timezone: str = "UTC",
        hold_seconds: float = 900.0,
        today: Callable[[], dt.date] | None = None,
    ) -> None:
        self._sessions = sessions
        self.limit_usd = usd(limit_usd)
        self._warn_ratio = Decimal(str(warn_ratio))
        self._zone = ZoneInfo(timezone)
        self._hold = dt.timedelta(seconds=hold_seconds)
        self._today = today or (lambda: dt.datetime.now(self._zone).date())

    def today(self) -> dt.date:
        return self._today()

    async def reserve(
        self, amount_usd: Decimal, *, provider: str, task: str, reference_id: str | None = None
    ) -> Reservation:
        """Holds `amount_usd` of today's budget, or raises BudgetExceededError."""
        amount = usd(amount_usd)
        day = self.today()
        for attempt in range(2):
            reservation = await self._try_reserve(day, amount, provider, task, reference_id)
            if reservation is not None:
                return reservation
            # Full: give back holds of calls whose process died, then look once more.
            if attempt == 0 and not await self.reclaim_expired():
                break
        status = await self.status(day)
        metrics.LLM_BUDGET_REFUSALS.labels(provider, task).inc()
        log.warning(
            "llm_budget_exhausted",
            provider=provider,
            task=task,
            needed_usd=str(amount),
            limit_usd=str(status.limit_usd),
            spent_usd=str(status.spent_usd),
            reserved_usd=str(status.reserved_usd),
        )
        raise BudgetExceededError(
            "오늘의 LLM 사용 예산이 모두 소진되었습니다. 내일 다시 시도해 주세요.",
            provider=provider,
        )

    async def _try_reserve(
        self, day: dt.date, amount: Decimal, provider: str, task: str, reference_id: str | None
    ) -> Reservation | None:
        days = LLMBudgetDay
        async with unit_of_work(self._sessions) as session:
            await session.execute(
                pg_insert(days)
                .values(day=day, limit_usd=self.limit_usd)
                .on_conflict_do_nothing(index_elements=[days.day])
            )
            held = (
                await session.execute(
                    update(days)
                    .where(
                        days.day == day,
                        days.spent_usd + days.reserved_usd + amount <= self.limit_usd,
                    )
                    .values(
                        reserved_usd=days.reserved_usd + amount,
                        limit_usd=self.limit_usd,
                        updated_at=func.now(),
                    )
                    .returning(days.spent_usd)
                    .execution_options(synchronize_session=False)
                )
            ).one_or_none()
            if held is None:
                return None
            reservation = Reservation(str(uuid.uuid4()), day, amount, reference_id)
            await session.execute(
                insert(LLMBudgetReservation).values(
                    id=reservation.id,
                    day=day,
                    amount_usd=amount,
                    provider=provider,
                    task=task,
                    expires_at=func.now() + self._hold,
                )
            )
        self._publish_ratio(Decimal(held[0]))
        return reservation

    async def settle(
        self, session: AsyncSession, reservation: Reservation, actual_usd: Decimal
    ) -> None:
        """Replaces the hold with what the call really cost, in the caller's transaction."""
        actual = usd(actual_usd)
        held = (
            await session.execute(
                delete(LLMBudgetReservation)
                .where(LLMBudgetReservation.id == reservation.id)
                .returning(LLMBudgetReservation.amount_usd)
            )
        ).scalar_one_or_none()
        # An expired hold was already given back: only the spend is added then.
        released = Decimal(held) if held is not None else Decimal(0)
        days = LLMBudgetDay
        row = (
            await session.execute(
                update(days)
                .where(days.day == reservation.day)
                .values(
                    reserved_usd=func.greatest(days.reserved_usd - released, 0),
                    spent_usd=days.spent_usd + actual,
                    updated_at=func.now(),
                )
                .returning(days.spent_usd, days.limit_usd, days.warned_at)
                .execution_options(synchronize_session=False)
            )
        ).one_or_none()
        if reservation.reference_id:
            await admission.charge(session, reservation.reference_id, actual)
        if row is None:
            return
        spent, limit, warned_at = Decimal(row[0]), Decimal(row[1]), row[2]
        self._publish_ratio(spent)
        if warned_at is None and limit and spent >= self._warn_ratio * limit:
            await self._warn_once(session, reservation.day, spent, limit)

    async def _warn_once(
        self, session: AsyncSession, day: dt.date, spent: Decimal, limit: Decimal
    ) -> None:
        # Only the process whose UPDATE sets warned_at logs: one warning a day in the fleet.
        first = (
            await session.execute(
                update(LLMBudgetDay)
                .where(LLMBudgetDay.day == day, LLMBudgetDay.warned_at.is_(None))
                .values(warned_at=func.now())
                .returning(LLMBudgetDay.day)
                .execution_options(synchronize_session=False)
            )
        ).one_or_none()
        if first is not None:
            metrics.LLM_BUDGET_WARNINGS.inc()
            log.warning(
                "llm_budget_warning",
                day=day.isoformat(),
                spent_usd=str(spent),
                limit_usd=str(limit),
                ratio=round(float(spent / limit), 3),
            )

    async def release(self, reservation: Reservation) -> None:
        """Gives the whole hold back (the call was never made)."""
        async with unit_of_work(self._sessions) as session:
            await self.settle(session, reservation, Decimal(0))

    async def reclaim_expired(self) -> Decimal:
        """Gives back holds past their expiry (their process died mid-call); returns the sum."""
        holds = cast(Table, LLMBudgetReservation.__table__).fullname
        days = cast(Table, LLMBudgetDay.__table__).fullname
        async with unit_of_work(self._sessions) as session:
            result = await session.execute(
                text(
                    f"WITH gone AS (DELETE FROM {holds} WHERE expires_at < now() "  # noqa: S608
                    "RETURNING day, amount_usd), "
                    "per_day AS (SELECT day, sum(amount_usd) AS total FROM gone GROUP BY day) "
                    f"UPDATE {days} AS d SET reserved_usd = greatest(d.reserved_usd - p.total, 0) "
                    "FROM per_day AS p WHERE d.day = p.day RETURNING p.total"
                )
            )
            reclaimed = sum((Decimal(r[0]) for r in result), Decimal(0))
        if reclaimed:
            log.warning("llm_budget_holds_reclaimed", amount_usd=str(reclaimed))
        return reclaimed

    async def status(self, day: dt.date | None = None) -> BudgetStatus:
        """Today's (or the given day's) limit, spend and open holds."""
        day = day or self.today()
        async with self._sessions() as session:
            row = await session.get(LLMBudgetDay, day)
            if row is None:
                return BudgetStatus(day, self.limit_usd, Decimal(0), Decimal(0))
            return BudgetStatus(day, row.limit_usd, row.spent_usd, row.reserved_usd)

    def _publish_ratio(self, spent: Decimal) -> None:
        if self.limit_usd:
            metrics.LLM_BUDGET_RATIO.set(float(spent / self.limit_usd))
