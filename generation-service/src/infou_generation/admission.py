"""Admission before spending: a request that will spend LLM money holds its estimated cost
against the daily budget and its client's share before anything is queued.

- The estimate is the request's calls (a curriculum, its articles, a sub-topic generation)
  priced at what such calls cost on average over the last week (the ledger's `ok` calls), or,
  before there are enough of them, at typical token counts priced by the task's first provider;
  never at the maximum output tokens, which would refuse almost everything.
- A request is admitted when the day's spend, the holds of calls in flight and what open
  admissions may still spend (their estimates less what they spent, summed from
  `budget_admissions`) leave room for it, and when its client's admissions of the day stay
  within the client's share of the budget. A refusal is
  `BUDGET_EXHAUSTED` with Retry-After until the budget day turns; nothing was queued.
- As its calls complete, what they cost is charged to the admission (`charge`, from
  `DailyBudget.settle`), so the outstanding hold shrinks as real spend grows. When the session
  or generation ends, what it did not spend is released; one never released (its process died)
  stops holding after `admission_hold_seconds` (closed when a request would not fit otherwise).
- The per-call reservation (budget.py) stays as the last guard: the day's real spend never
  passes the limit, whatever the estimates said.
- Before any of that, the learner's text travelling with the request is moderated
  (content/moderation.py): a flagged text is refused INVALID_ARGUMENT, code CONTENT_FLAGGED,
  naming its public field; nothing is held, stored or spent.

Admissions of a day serialise on a transaction-level advisory lock of their own
(repository.lock_admissions), held for one statement and the commit; they read the day's budget
row without locking it. So an admission never waits for a job worker's per-call hold or settle
(which lock the day row, in processes busy streaming LLM answers), and a charge or a release
updates its admission row only.
"""

from __future__ import annotations

import datetime as dt
import math
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from typing import Final, Literal, NoReturn
from zoneinfo import ZoneInfo

import grpc
from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infou_generation import budget, repository
from infou_generation.content.moderation import ContentModeration, refuse_flagged
from infou_generation.models import BudgetAdmission
from infou_generation.settings import GenerationSettings
from infou_libs.db import autocommit
from infou_libs.errors import DomainError, InvalidArgument
from infou_libs.logging import get_logger

log = get_logger(__name__)

AdmissionKind = Literal["session", "subtopics"]

ADMISSIONS = Counter(
    "infou_budget_admissions_total",
    "Requests admitted or refused against the daily LLM budget before anything was queued",
    ["kind", "result"],
)

# Typical (input, output) tokens of one call, before the ledger has seen enough real ones.
TYPICAL_TOKENS: Final[dict[str, tuple[int, int]]] = {
    "subtopics": (1500, 1500),
    "curriculum": (1500, 2000),
    "article": (1500, 2000),
}
OBSERVED_WINDOW: Final = dt.timedelta(days=7)
MIN_OBSERVED_CALLS: Final = 5
# Observed averages are read again after this long (one query, not one per admission).
OBSERVED_TTL_SECONDS: Final = 60.0
ANONYMOUS: Final = "anonymous"
# Which request field makes a session cheaper (the 422 of the per-session cap names it).
SESSION_SIZE_FIELD: Final = "options.max_articles_per_subtopic"


class BudgetExhausted(DomainError):
    """Not enough of today's budget (or of the client's share) for this request."""

    status = grpc.StatusCode.RESOURCE_EXHAUSTED
    code = "BUDGET_EXHAUSTED"


@dataclass(frozen=True)
class Workload:
    """The LLM calls a request will make."""

    curricula: int = 0
    articles: int = 0
    subtopic_generations: int = 0

    def calls(self) -> dict[str, int]:
        return {
            "curriculum": self.curricula,
            "article": self.articles,
            "subtopics": self.subtopic_generations,
        }


@dataclass(frozen=True)
class Granted:
    admission_id: str
    estimated_usd: Decimal


def estimate_usd(work: Workload, per_call: Mapping[str, Decimal], margin: Decimal) -> Decimal:
    """What the workload should cost: its calls at their per-call cost, times the margin."""
    total = sum(
        (Decimal(count) * per_call[task] for task, count in work.calls().items() if count > 0),
        Decimal(0),
    )
    return budget.usd(total * margin)


def typical_cost(input_usd: Decimal, output_usd: Decimal, task: str) -> Decimal:
    """One call of `task` at typical token counts and these per-token prices."""
    tokens_in, tokens_out = TYPICAL_TOKENS[task]
    return input_usd * tokens_in + output_usd * tokens_out


def client_allowance(limit_usd: Decimal, share: Decimal) -> Decimal:
    """The most of the day's budget one client may hold or spend (rounded down)."""
    return (limit_usd * share).quantize(Decimal("0.000001"), rounding=ROUND_FLOOR)


def outstanding(estimated: Decimal, spent: Decimal) -> Decimal:
    """What an open admission still holds: its estimate less what it spent, never below 0."""
    return max(estimated - spent, Decimal(0))


def seconds_until_next_day(now: dt.datetime, zone: ZoneInfo) -> int:
    """Seconds until the budget day (midnight in its time zone) turns; at least 1."""
    local = now.astimezone(zone)
    midnight = dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time(0), tzinfo=zone)
    return max(1, math.ceil((midnight - local).total_seconds()))


def fits(
    *, spent: Decimal, reserved: Decimal, admitted: Decimal, limit: Decimal, amount: Decimal
) -> bool:
    """Whether `amount` fits in the day beside spend, calls in flight and admitted requests."""
    return spent + reserved + admitted + amount <= limit


class Admissions:
    """Admits, charges and releases requests against the daily budget (see the module doc)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: GenerationSettings,
        *,
        today: Callable[[], dt.date] | None = None,
        moderation: ContentModeration | None = None,
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        # Without one, the local check: learner text is never admitted unmoderated.
        self._moderation = moderation or ContentModeration(None)
        self._zone = ZoneInfo(settings.llm_budget_timezone)
        self._limit = budget.usd(settings.daily_budget_usd)
        self._today = today or (lambda: dt.datetime.now(self._zone).date())
        self._observed: dict[str, Decimal] = {}
        self._observed_at = -math.inf

    def today(self) -> dt.date:
        return self._today()

    def retry_after(self) -> int:
        return seconds_until_next_day(dt.datetime.now(dt.UTC), self._zone)

    async def per_call_costs(self) -> dict[str, Decimal]:
        """Each task's cost per call: observed over the last week, else typical."""
        if time.monotonic() - self._observed_at > OBSERVED_TTL_SECONDS:
            async with self._sessions() as session:
                rows = await repository.observed_call_costs(
                    session, list(TYPICAL_TOKENS), OBSERVED_WINDOW
                )
                self._observed = {
                    str(task): Decimal(avg)
                    for task, avg, count in rows
                    if count >= MIN_OBSERVED_CALLS and avg is not None
                }
            self._observed_at = time.monotonic()
        costs = {}
        for task in TYPICAL_TOKENS:
            if task in self._observed:
                costs[task] = self._observed[task]
                continue
            route = self._settings.route(task)  # type: ignore[arg-type]
            config = self._settings.provider_config(route[0])
            costs[task] = typical_cost(
                config.input_usd_per_token, config.output_usd_per_token, task
            )
        return costs

    async def estimate(self, work: Workload) -> Decimal:
        margin = Decimal(str(self._settings.admission_estimate_margin))
        return estimate_usd(work, await self.per_call_costs(), margin)

    async def reserve(
        self,
        *,
        kind: AdmissionKind,
        reference_id: str,
        work: Workload,
        client_id: str,
        client_share: float = 0.0,
        learner_text: Mapping[str, str] | None = None,
    ) -> Granted:
        """Holds the workload's estimate, or raises BudgetExhausted / InvalidArgument (the cap,
        or CONTENT_FLAGGED: `learner_text`, public field → text, failed moderation).

        Asking again for the same reference returns the first admission (a retried create).
        """
        if learner_text:
            verdict = await self._moderation.check(learner_text, stage="input")
            if verdict.flagged:
                ADMISSIONS.labels(kind, "content_flagged").inc()
            refuse_flagged(verdict)
        estimate = await self.estimate(work)
        cap = self._settings.session_cost_cap_usd
        if kind == "session" and cap > 0 and estimate > cap:
            ADMISSIONS.labels(kind, "over_cap").inc()
            raise InvalidArgument(
                f"this session is estimated at ${estimate:.4f}, over the ${cap} a session may "
                "cost; ask for fewer articles",
                field=SESSION_SIZE_FIELD,
                code="SESSION_COST_CAP_EXCEEDED",
            )
        client = client_id[:100] or ANONYMOUS
        share = Decimal(str(client_share or self._settings.client_budget_share))
        allowance = client_allowance(self._limit, min(share, Decimal(1)))
        day = self.today()
        granted = Granted(str(uuid.uuid4()), estimate)
        admission = BudgetAdmission(
            id=granted.admission_id,
            reference_id=reference_id,
            kind=kind,
            day=day,
            client_id=client,
            estimated_usd=estimate,
            spent_usd=Decimal(0),
            status="open",
            expires_at=dt.datetime.now(dt.UTC)
            + dt.timedelta(seconds=self._settings.admission_hold_seconds),
        )
        # One call in autocommit: the day's admission lock never outlives it (repository.admit).
        # Expired admissions are closed only when one does not fit (then it is asked once more).
        fit = await self._admit(admission, allowance)
        if fit is None and await self._close_expired():
            fit = await self._admit(admission, allowance)
        if fit is None:
            async with self._sessions() as session:
                await self._refuse_why(session, kind, client, estimate, allowance)
        if fit[0] != granted.admission_id:  # a retried create: its first admission
            return Granted(*fit)
        ADMISSIONS.labels(kind, "admitted").inc()
        # Debug: one line per created session cost a stdout write on the request path; admissions
        # are counted (infou_budget_admissions_total), refusals and expiries stay warnings.
        log.debug(
            "budget_admitted",
            kind=kind,
            reference_id=reference_id,
            estimated_usd=str(estimate),
        )
        return granted

    async def _admit(
        self, admission: BudgetAdmission, allowance: Decimal
    ) -> tuple[str, Decimal] | None:
        async with autocommit(self._sessions) as session:
            return await repository.admit(
                await session.connection(), admission, limit=self._limit, allowance=allowance
            )

    async def _refuse_why(
        self,
        session: AsyncSession,
        kind: str,
        client: str,
        estimate: Decimal,
        allowance: Decimal,
    ) -> NoReturn:
        """Raises BudgetExhausted naming what is short: the client's share or the day."""
        used = await repository.client_admission_usage(session, self.today(), client)
        if used + estimate > allowance:
            self._refuse(kind, "client_share", client, estimate, used, allowance)
        row = await repository.budget_day(session, self.today())
        spent = row.spent_usd if row is not None else Decimal(0)
        self._refuse(kind, "daily_budget", client, estimate, spent, self._limit)

    def _refuse(
        self,
        kind: str,
        reason: str,
        client: str,
        estimate: Decimal,
        used: Decimal,
        limit: Decimal,
    ) -> NoReturn:
        ADMISSIONS.labels(kind, reason).inc()
        log.warning(
            "budget_admission_refused",
            kind=kind,
            reason=reason,
            client=client,
            estimated_usd=str(estimate),
            used_usd=str(used),
            limit_usd=str(limit),
        )
        who = "이 클라이언트의 오늘" if reason == "client_share" else "오늘의"
        raise BudgetExhausted(
            f"{who} LLM 사용 예산이 부족해 요청을 받을 수 없습니다 "
            f"(예상 비용 ${estimate:.4f}). 예산이 갱신된 뒤 다시 시도해 주세요.",
            retry_after=self.retry_after(),
        )

    async def release(self, reference_id: str) -> Decimal:
        """Closes the reference's admission; returns what it held and did not spend."""
        async with autocommit(self._sessions) as session:  # one UPDATE … RETURNING
            closed = await repository.close_admission(session, reference_id)
        if closed is None:
            return Decimal(0)
        freed = outstanding(*closed)
        log.debug("budget_admission_released", reference_id=reference_id, released_usd=str(freed))
        return freed

    async def _close_expired(self) -> bool:
        """Admissions past their hold stop holding (their session stalled or was lost); whether
        any did."""
        async with autocommit(self._sessions) as session:  # one UPDATE … RETURNING
            rows = await repository.close_expired_admissions(session)
        if rows:
            log.warning("budget_admissions_expired", count=len(rows))
        return bool(rows)


async def charge(session: AsyncSession, reference_id: str, actual_usd: Decimal) -> None:
    """Adds a completed call's cost to its admission, in the settling transaction: the
    admission's outstanding hold (its estimate less its spend) shrinks as the spend grows."""
    if actual_usd <= 0:
        return
    await repository.charge_admission(session, reference_id, actual_usd)
