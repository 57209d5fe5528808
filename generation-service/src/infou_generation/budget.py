"""The daily LLM budget, enforced before a call: reserve the worst case, then settle the real cost.

Safe across concurrent calls and processes because a reservation is one conditional UPDATE of
the day's row (`spent + reserved + amount <= limit`, repository.hold_budget), which Postgres
serialises on the row lock and re-checks after waiting. A reservation whose process died is
given back once it expires.

Transactions: `reserve`, `release` and `reclaim_expired` are units of work of their own, by
design, whoever calls them. A hold must be committed before the call it guards is made (only a
committed hold is seen by the other workers' reservations), and no transaction may stay open
across the call (the day row's lock would serialise every worker behind one provider call).
`settle` runs in the caller's transaction, so that the settled hold and the call's ledger row
commit together (llm/router.py).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infou_generation import admission, repository
from infou_generation.llm import metrics
from infou_generation.llm.types import BudgetExceededError
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
        """Holds `amount_usd` of today's budget, or raises BudgetExceededError.

        One unit of work of its own, committed before this returns (see the module doc)."""
        amount = usd(amount_usd)
        day = self.today()
        async with unit_of_work(self._sessions) as session:
            spent = await repository.hold_budget(session, day, amount, self.limit_usd)
            # Full: give back holds of calls whose process died, then look once more.
            if spent is None and await self._reclaim(session):
                spent = await repository.hold_budget(session, day, amount, self.limit_usd)
            if spent is None:
                refused = await self._status(session, day)
            else:
                reservation = Reservation(str(uuid.uuid4()), day, amount, reference_id)
                await repository.add_budget_reservation(
                    session, reservation.id, day, amount, provider, task, self._hold
                )
        if spent is not None:
            self._publish_ratio(spent)
            return reservation
        metrics.LLM_BUDGET_REFUSALS.labels(provider, task).inc()
        log.warning(
            "llm_budget_exhausted",
            provider=provider,
            task=task,
            needed_usd=str(amount),
            limit_usd=str(refused.limit_usd),
            spent_usd=str(refused.spent_usd),
            reserved_usd=str(refused.reserved_usd),
        )
        raise BudgetExceededError(
            "오늘의 LLM 사용 예산이 모두 소진되었습니다. 내일 다시 시도해 주세요.",
            provider=provider,
        )

    async def settle(
        self, session: AsyncSession, reservation: Reservation, actual_usd: Decimal
    ) -> None:
        """Replaces the hold with what the call really cost, in the caller's transaction."""
        actual = usd(actual_usd)
        held = await repository.drop_budget_reservation(session, reservation.id)
        # An expired hold was already given back: only the spend is added then.
        released = held if held is not None else Decimal(0)
        row = await repository.settle_budget_day(session, reservation.day, released, actual)
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
        if await repository.mark_budget_warned(session, day):
            metrics.LLM_BUDGET_WARNINGS.inc()
            log.warning(
                "llm_budget_warning",
                day=day.isoformat(),
                spent_usd=str(spent),
                limit_usd=str(limit),
                ratio=round(float(spent / limit), 3),
            )

    async def release(self, reservation: Reservation) -> None:
        """Gives the whole hold back (the call was never made); a unit of work of its own."""
        async with unit_of_work(self._sessions) as session:
            await self.settle(session, reservation, Decimal(0))

    async def reclaim_expired(self) -> Decimal:
        """Gives back holds past their expiry (their process died mid-call); returns the sum."""
        async with unit_of_work(self._sessions) as session:
            return await self._reclaim(session)

    async def _reclaim(self, session: AsyncSession) -> Decimal:
        reclaimed = await repository.reclaim_expired_holds(session)
        if reclaimed:
            log.warning("llm_budget_holds_reclaimed", amount_usd=str(reclaimed))
        return reclaimed

    async def status(self, day: dt.date | None = None) -> BudgetStatus:
        """Today's (or the given day's) limit, spend and open holds."""
        async with self._sessions() as session:
            return await self._status(session, day or self.today())

    async def _status(self, session: AsyncSession, day: dt.date) -> BudgetStatus:
        row = await repository.budget_day(session, day)
        if row is None:
            return BudgetStatus(day, self.limit_usd, Decimal(0), Decimal(0))
        return BudgetStatus(day, row.limit_usd, row.spent_usd, row.reserved_usd)

    def _publish_ratio(self, spent: Decimal) -> None:
        if self.limit_usd:
            metrics.LLM_BUDGET_RATIO.set(float(spent / self.limit_usd))
