"""The router: picks providers for a task, and around every call reserves budget, waits for the
rate limiter, retries with backoff, falls back to the next provider and writes the ledger.

Transactions: every provider call is bracketed by two short units of work of its own, never
the job's. Before the call, the budget hold (DailyBudget.reserve) commits, so that every other
worker's reservation sees it; after the call, the settled hold and the call's ledger row commit
together (`_finish`), so that the day's spend is true while the job goes on and a call that was
paid for is on the ledger even if the job later fails. Holding one transaction across a call
instead would keep the budget day's row locked for the whole call and serialise every worker.
The ledger row itself is written `started` (at the estimated input) just before the call and
completed after it, so a call cut by a cancellation or a dead worker is on the ledger too.

Shared through Redis by every worker: a circuit breaker and RPM/TPM buckets per provider and
model, and each job's call allowance (`LLMRequest.job_id`). When every provider of the route is
open, `ProvidersDownError`; when the job's allowance is spent, `CallsExhaustedError`: both mean
that retrying the job now would call nobody.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx2
from anthropic import AsyncAnthropic
from openai import AsyncOpenAI
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infou_generation import ledger
from infou_generation.budget import DailyBudget, Reservation
from infou_generation.ledger import CallStatus, LedgerEntry
from infou_generation.llm import jsonschema, metrics
from infou_generation.llm.allowance import CallAllowance
from infou_generation.llm.breaker import CircuitBreaker
from infou_generation.llm.providers.anthropic import AnthropicProvider
from infou_generation.llm.providers.base import Provider, Repair
from infou_generation.llm.providers.offline import OfflineProvider
from infou_generation.llm.providers.openai_compat import OpenAICompatibleProvider
from infou_generation.llm.ratelimit import ProviderLimiter
from infou_generation.llm.tokens import estimate_input_tokens, estimate_tokens
from infou_generation.llm.types import (
    TASK_KINDS,
    BudgetExceededError,
    CallsExhaustedError,
    Completion,
    InvalidOutputError,
    LLMError,
    LLMRequest,
    LLMResult,
    NoProviderLeftError,
    ProviderName,
    ProvidersDownError,
    ProviderUnavailableError,
    RateLimitedError,
    TaskKind,
    TokenUsage,
)
from infou_generation.settings import GenerationSettings, LLMProviderConfig
from infou_libs.db import unit_of_work
from infou_libs.logging import get_logger

log = get_logger(__name__)

OnRateLimited = Callable[[str, float], Awaitable[None]]

# Client-side waits shorter than this are not worth telling the learner about.
_NOTIFY_AFTER_S = 1.0


def price(config: LLMProviderConfig, usage: TokenUsage) -> Decimal:
    """What the tokens cost at the table prices (cache reads and writes at their own prices)."""
    cached_price = config.cached_input_usd_per_token
    if cached_price is None:
        cached_price = config.input_usd_per_token
    write_price = config.cache_write_usd_per_token
    if write_price is None:
        write_price = config.input_usd_per_token
    fresh = max(usage.input_tokens - usage.cached_tokens - usage.cache_write_tokens, 0)
    return (
        fresh * config.input_usd_per_token
        + usage.cached_tokens * cached_price
        + usage.cache_write_tokens * write_price
        + usage.output_tokens * config.output_usd_per_token
    )


def parse_answer(text: str, schema: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """The answer as a schema-valid object, or None and what is wrong with it."""
    stripped = text.strip()
    if stripped.startswith("```"):
        # JSON mode models sometimes fence their answer.
        stripped = stripped.strip("`").removeprefix("json").strip()
    try:
        value = json.loads(stripped)
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
    if not isinstance(value, dict):
        return None, "the answer is not a JSON object"
    errors = jsonschema.validate(value, schema)
    if errors:
        more = f" (and {len(errors) - 8} more)" if len(errors) > 8 else ""
        return None, "; ".join(errors[:8]) + more
    return value, None


@dataclass
class _Spend:
    """Everything one generate() call was billed, over every attempt and provider."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: Decimal = field(default_factory=Decimal)

    def add(self, usage: TokenUsage, cost: Decimal) -> None:
        self.input_tokens += usage.input_tokens
        self.output_tokens += usage.output_tokens
        self.cached_tokens += usage.cached_tokens
        self.cost_usd += cost


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 3
    backoff_base_s: float = 1.0
    backoff_max_s: float = 30.0
    max_rate_limit_wait_s: float = 60.0
    request_timeout_s: float = 120.0
    # Our own RPM/TPM limiter: a longer wait moves on to the next provider (None: always wait).
    max_limiter_wait_s: float | None = None

    def backoff(self, retry: int) -> float:
        """Exponential with ±20% jitter, so that many callers do not come back together."""
        delay = min(self.backoff_max_s, self.backoff_base_s * (2.0**retry))
        return delay * random.uniform(0.8, 1.2)  # noqa: S311 (jitter, not security)


class LLMRouter:
    """Generates structured output for a task through its providers, in order."""

    def __init__(
        self,
        providers: Mapping[ProviderName, Provider],
        configs: Mapping[ProviderName, LLMProviderConfig],
        routes: Mapping[TaskKind, Sequence[ProviderName]],
        budget: DailyBudget,
        sessions: async_sessionmaker[AsyncSession],
        policy: RetryPolicy | None = None,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        breaker: CircuitBreaker | None = None,
        allowance: CallAllowance | None = None,
        redis: Redis | None = None,
    ) -> None:
        self.providers = dict(providers)
        self.configs = dict(configs)
        self.routes = {task: list(names) for task, names in routes.items()}
        self.budget = budget
        self._sessions = sessions
        self.policy = policy or RetryPolicy()
        self._sleep = sleep
        # No breaker given: none (failure_threshold 0 switches it off).
        self.breaker = breaker or CircuitBreaker(failure_threshold=0)
        # No allowance given: a job's calls are not counted (0 switches the bound off).
        self.allowance = allowance or CallAllowance(None, 0)
        # With Redis, every worker books its calls in the same RPM/TPM buckets.
        self.limiters = {
            name: ProviderLimiter(
                configs[name].requests_per_minute,
                configs[name].tokens_per_minute,
                redis=redis,
                key=f"{name}:{provider.model}",
            )
            for name, provider in self.providers.items()
        }

    async def aclose(self) -> None:
        for provider in self.providers.values():
            await provider.aclose()

    async def generate(
        self,
        request: LLMRequest,
        *,
        on_rate_limited: OnRateLimited | None = None,
        exclude: Collection[str] = (),
    ) -> LLMResult:
        """A schema-valid answer from the first provider that gives one; LLMError otherwise.

        `exclude`: providers of the task's route not to ask (those whose answers were refused).
        """
        started = time.monotonic()
        route = [name for name in self.routes.get(request.task) or [] if name not in exclude]
        if not route:
            raise NoProviderLeftError(
                f"no LLM provider is routed for task {request.task!r}"
                + (f" besides {', '.join(sorted(exclude))}" if exclude else "")
            )
        spend = _Spend()
        last_error: LLMError | None = None
        rate_limited = False
        # After a budget refusal only providers whose call is estimated cheaper are tried.
        ceiling: Decimal | None = None
        for name in route:
            estimate = self._estimate(name, request, None)
            if ceiling is not None and estimate >= ceiling:
                continue
            try:
                data, completion = await self._through(name, request, spend, on_rate_limited)
            except BudgetExceededError as exc:
                ceiling = estimate if ceiling is None else min(ceiling, estimate)
                last_error = exc
                continue
            except CallsExhaustedError as exc:
                exc.rate_limited = rate_limited
                raise
            except LLMError as exc:
                last_error = exc
                rate_limited = rate_limited or isinstance(exc, RateLimitedError)
                log.warning(
                    "llm_provider_failed",
                    llm_provider=name,
                    task=request.task,
                    error=exc.message,
                    session_id=request.session_id,
                )
                continue
            return LLMResult(
                data=data,
                provider=name,
                model=completion.model,
                input_tokens=spend.input_tokens,
                output_tokens=spend.output_tokens,
                cached_tokens=spend.cached_tokens,
                cost_usd=spend.cost_usd,
                latency_ms=_ms_since(started),
            )
        assert last_error is not None
        if not isinstance(last_error, BudgetExceededError) and await self._all_down(request, route):
            raise ProvidersDownError(
                f"every provider for {request.task!r} is cooling down "
                f"(circuit breaker open: {', '.join(route)}); last: {last_error.message}",
                rate_limited=rate_limited,
            ) from last_error
        raise last_error

    async def _all_down(self, request: LLMRequest, route: Sequence[ProviderName]) -> bool:
        """Whether every provider of the route has its circuit breaker open now."""
        for name in route:
            if await self.breaker.state(name, self.providers[name].model) != "open":
                return False
        log.warning("llm_all_providers_down", task=request.task, providers=list(route))
        return True

    def _estimate(self, name: ProviderName, request: LLMRequest, repair: Repair | None) -> Decimal:
        """The most this call can cost: estimated input, and every allowed output token."""
        return price(self.configs[name], self._predicted(request, repair))

    @staticmethod
    def _predicted(request: LLMRequest, repair: Repair | None) -> TokenUsage:
        input_tokens = estimate_input_tokens(request)
        if repair is not None:
            input_tokens += estimate_tokens(repair.previous_output) + estimate_tokens(
                repair.problem
            )
            input_tokens += 100
        return TokenUsage(input_tokens, request.max_output_tokens, 0)

    async def _through(
        self,
        name: ProviderName,
        request: LLMRequest,
        spend: _Spend,
        on_rate_limited: OnRateLimited | None,
    ) -> tuple[dict[str, Any], Completion]:
        """One provider: retries on rate limits and outages, one repair turn for a bad answer."""
        provider = self.providers[name]
        config = self.configs[name]
        retries = 0
        attempt = 0
        repair: Repair | None = None
        while True:
            if not await self.breaker.allow(name, provider.model):
                raise ProviderUnavailableError(
                    f"{name}: skipped, its circuit breaker is open", provider=name
                )
            attempt += 1
            predicted = self._predicted(request, repair)
            estimate = price(config, predicted)
            reservation = await self._reserve(name, provider.model, request, estimate, attempt)
            booked = predicted.input_tokens + predicted.output_tokens
            # Before the provider reports usage, the call costs what its prompt is estimated at.
            in_flight = self._entry(
                name,
                provider.model,
                request,
                "started",
                TokenUsage(predicted.input_tokens),
                0,
                attempt,
                estimated=True,
            )
            row_id: int | None = None
            started = time.monotonic()
            try:
                await self._wait_for_limiter(name, booked, request, on_rate_limited)
                await self._count_call(name, request)
                row_id = await self._start(in_flight)
                started = time.monotonic()
                completion, error = await self._call(provider, request, repair)
            except BaseException as exc:
                # Cancelled while waiting or mid-call: give the hold back now, not at expiry;
                # a call that went out stays on the ledger, estimated and marked so.
                await asyncio.shield(
                    self._cut_short(reservation, in_flight, row_id, _ms_since(started), exc)
                )
                raise
            latency_ms = _ms_since(started)

            if error is not None:
                usage = error.billed
                status: CallStatus = (
                    "rate_limited" if isinstance(error, RateLimitedError) else "error"
                )
                await self._finish(
                    reservation,
                    self._entry(name, provider.model, request, status, usage, latency_ms, attempt),
                    error=error.message,
                    row_id=row_id,
                )
                spend.add(usage, price(config, usage))
                await self.limiters[name].settle(booked, usage.input_tokens + usage.output_tokens)
                opened = isinstance(
                    error, RateLimitedError | ProviderUnavailableError
                ) and await self.breaker.record_failure(name, provider.model)
                delay = None if opened else self._retry_delay(error, retries)
                if delay is None:
                    raise error
                if isinstance(error, RateLimitedError):
                    metrics.LLM_RATE_LIMIT_WAITS.labels(name, "provider").inc()
                    metrics.LLM_RATE_LIMIT_WAIT_SECONDS.labels(name, "provider").inc(delay)
                    await _notify(on_rate_limited, name, delay)
                await self._sleep(delay)
                retries += 1
                continue

            assert completion is not None
            await self.breaker.record_success(name, provider.model)
            usage = completion.usage
            await self.limiters[name].settle(booked, usage.input_tokens + usage.output_tokens)
            data, problem = parse_answer(completion.text, request.json_schema)
            status = "ok" if data is not None else "invalid_output"
            await self._finish(
                reservation,
                self._entry(name, completion.model, request, status, usage, latency_ms, attempt),
                error=problem,
                row_id=row_id,
            )
            spend.add(usage, price(config, usage))
            if data is not None:
                return data, completion
            assert problem is not None
            if provider.repairable and repair is None:
                repair = Repair(completion.text, problem)
                continue
            raise InvalidOutputError(f"{name}: {problem}", provider=name, billed=usage)

    async def _call(
        self, provider: Provider, request: LLMRequest, repair: Repair | None
    ) -> tuple[Completion | None, LLMError | None]:
        try:
            async with asyncio.timeout(self.policy.request_timeout_s):
                return await provider.complete(request, repair), None
        except TimeoutError:
            return None, ProviderUnavailableError(
                f"{provider.name}: no complete answer within {self.policy.request_timeout_s}s",
                provider=provider.name,
            )
        except LLMError as exc:
            return None, exc
        except httpx2.HTTPError as exc:
            return None, ProviderUnavailableError(
                f"{provider.name}: {type(exc).__name__}", provider=provider.name
            )
        except (ValueError, TypeError, KeyError) as exc:
            # A bad context, a bug or an SDK surprise: not worth retrying on this provider.
            log.exception("llm_provider_crashed", llm_provider=provider.name)
            detail = str(exc)[:300]
            return None, LLMError(
                f"{provider.name}: {type(exc).__name__}: {detail}", provider=provider.name
            )

    def _retry_delay(self, error: LLMError, retries: int) -> float | None:
        """How long to wait before trying this provider again; None: move on."""
        if not isinstance(error, RateLimitedError | ProviderUnavailableError):
            return None
        if retries >= self.policy.max_retries:
            return None
        if isinstance(error, RateLimitedError) and error.retry_after is not None:
            if error.retry_after > self.policy.max_rate_limit_wait_s:
                return None
            return error.retry_after
        return self.policy.backoff(retries)

    async def _reserve(
        self,
        name: ProviderName,
        model: str,
        request: LLMRequest,
        estimate: Decimal,
        attempt: int,
    ) -> Reservation | None:
        if estimate <= 0:
            return None
        try:
            return await self.budget.reserve(
                estimate,
                provider=name,
                task=request.task,
                reference_id=request.session_id or request.generation_id,
            )
        except BudgetExceededError as exc:
            entry = self._entry(name, model, request, "budget_refused", TokenUsage(), 0, attempt)
            await self._finish(None, entry, error=f"needs about ${estimate:.6f}")
            raise exc from None

    async def _wait_for_limiter(
        self,
        name: ProviderName,
        tokens: int,
        request: LLMRequest,
        on_rate_limited: OnRateLimited | None,
    ) -> None:
        wait = await self.limiters[name].take(tokens, max_wait_s=self.policy.max_limiter_wait_s)
        if wait is None:
            metrics.LLM_RATE_LIMIT_WAITS.labels(name, "client_refused").inc()
            raise RateLimitedError(
                f"{name}: our {self.limiters[name].requests_per_minute} RPM / "
                f"{self.limiters[name].tokens_per_minute} TPM budget would make this call wait "
                f"over {self.policy.max_limiter_wait_s}s",
                provider=name,
            )
        if wait <= 0:
            return
        metrics.LLM_RATE_LIMIT_WAITS.labels(name, "client").inc()
        metrics.LLM_RATE_LIMIT_WAIT_SECONDS.labels(name, "client").inc(wait)
        log.info("llm_rate_limit_wait", llm_provider=name, wait_s=round(wait, 3), task=request.task)
        if wait >= _NOTIFY_AFTER_S:
            await _notify(on_rate_limited, name, wait)
        await self._sleep(wait)

    async def _count_call(self, name: ProviderName, request: LLMRequest) -> None:
        """Counts the call against its job's allowance; CallsExhaustedError when it is used up."""
        if request.job_id is None or await self.allowance.take(request.job_id):
            return
        metrics.LLM_CALLS_EXHAUSTED.labels(request.task).inc()
        log.warning(
            "llm_job_calls_exhausted",
            llm_provider=name,
            task=request.task,
            max_calls=self.allowance.max_calls,
            session_id=request.session_id,
        )
        raise CallsExhaustedError(
            f"the job made its {self.allowance.max_calls} provider calls "
            "(INFOU_LLM_MAX_CALLS_PER_JOB) without an answer"
        )

    def _entry(
        self,
        name: ProviderName,
        model: str,
        request: LLMRequest,
        status: CallStatus,
        usage: TokenUsage,
        latency_ms: int,
        attempt: int,
        *,
        estimated: bool = False,
    ) -> LedgerEntry:
        return LedgerEntry(
            provider=name,
            model=model,
            task=request.task,
            status=status,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cached_tokens=usage.cached_tokens,
            cost_usd=price(self.configs[name], usage),
            latency_ms=latency_ms,
            attempt=attempt,
            session_id=request.session_id,
            generation_id=request.generation_id,
            estimated=estimated,
        )

    async def _start(self, entry: LedgerEntry) -> int | None:
        """The call's `started` ledger row, committed before the call goes out: a worker that
        dies mid-call leaves it, with the estimated input, on the ledger."""
        try:
            async with unit_of_work(self._sessions) as session:
                return await ledger.record(session, entry)
        except Exception as exc:
            log.error("llm_ledger_write_failed", error=str(exc), llm_provider=entry.provider)
            return None

    async def _cut_short(
        self,
        reservation: Reservation | None,
        in_flight: LedgerEntry,
        row_id: int | None,
        latency_ms: int,
        exc: BaseException,
    ) -> None:
        """A call cancelled before it finished: not yet sent → the hold goes back; sent → its
        row becomes `interrupted` at the estimate, and the hold is settled at that."""
        if row_id is None:
            if reservation is not None:
                await self._release(reservation)
            return
        entry = LedgerEntry(
            **{**in_flight.__dict__, "status": "interrupted", "latency_ms": latency_ms}
        )
        await self._finish(reservation, entry, error=type(exc).__name__, row_id=row_id)

    async def _finish(
        self,
        reservation: Reservation | None,
        entry: LedgerEntry,
        *,
        error: str | None,
        row_id: int | None = None,
    ) -> None:
        """Settles the hold and writes the ledger row together, in a unit of work of their own
        (see the module doc)."""
        if error is not None:
            entry = LedgerEntry(**{**entry.__dict__, "error": error})
        ledger.observe(entry)
        log.info(
            "llm_call",
            llm_provider=entry.provider,
            model=entry.model,
            task=entry.task,
            status=entry.status,
            attempt=entry.attempt,
            tokens_used=entry.input_tokens + entry.output_tokens,
            cost_usd=str(entry.cost_usd),
            duration_ms=entry.latency_ms,
            session_id=entry.session_id,
            generation_id=entry.generation_id,
            error=error,
        )
        try:
            async with unit_of_work(self._sessions) as session:
                await ledger.record(session, entry, row_id=row_id)
                # Last before the commit: settling locks the day's budget row, which every
                # admission and hold of the day waits for.
                if reservation is not None:
                    await self.budget.settle(session, reservation, entry.cost_usd)
        except Exception as exc:
            # The answer is worth more than its ledger row; an unsettled hold expires by itself.
            log.error("llm_ledger_write_failed", error=str(exc), llm_provider=entry.provider)

    async def _release(self, reservation: Reservation) -> None:
        try:
            await self.budget.release(reservation)
        except Exception as exc:
            log.error("llm_budget_release_failed", error=str(exc))


async def _notify(callback: OnRateLimited | None, provider: str, wait_s: float) -> None:
    if callback is None:
        return
    try:
        await callback(provider, wait_s)
    except Exception as exc:
        log.warning("llm_rate_limit_notify_failed", llm_provider=provider, error=str(exc))


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def build_router(
    settings: GenerationSettings,
    sessions: async_sessionmaker[AsyncSession],
    *,
    redis: Redis | None = None,
) -> LLMRouter:
    """The router for these settings: providers that are configured, routed per task.

    With `redis`, provider health (the circuit breakers), the RPM/TPM budgets and each job's
    call allowance are shared by every worker using it.
    """
    routes = {
        task: settings.route(task)
        for task in TASK_KINDS
        if task != "quality_judge" or settings.quality_llm_judge
    }
    names = {name for names in routes.values() for name in names}
    providers = {name: _provider(settings, name) for name in names}
    configs = {name: settings.provider_config(name) for name in names}
    policy = RetryPolicy(
        max_retries=settings.llm_max_retries,
        backoff_base_s=settings.llm_backoff_base_s,
        backoff_max_s=settings.llm_backoff_max_s,
        max_rate_limit_wait_s=settings.llm_max_rate_limit_wait_s,
        request_timeout_s=settings.llm_request_timeout_s,
        max_limiter_wait_s=settings.llm_limiter_max_wait_s,
    )
    budget = DailyBudget(
        sessions,
        settings.daily_budget_usd,
        warn_ratio=settings.llm_budget_warn_ratio,
        timezone=settings.llm_budget_timezone,
        # A hold covers one call: its limiter wait and its timeout, with room to spare.
        hold_seconds=settings.llm_request_timeout_s + settings.llm_max_rate_limit_wait_s + 300,
    )
    breaker = CircuitBreaker(
        redis,
        failure_threshold=settings.llm_breaker_failures,
        window_s=settings.llm_breaker_window_s,
        cooldown_s=settings.llm_breaker_cooldown_s,
        probe_timeout_s=settings.llm_request_timeout_s + settings.llm_max_rate_limit_wait_s,
    )
    allowance = CallAllowance(redis, settings.llm_max_calls_per_job)
    return LLMRouter(
        providers,
        configs,
        routes,
        budget,
        sessions,
        policy,
        breaker=breaker,
        allowance=allowance,
        redis=redis,
    )


def _provider(settings: GenerationSettings, name: ProviderName) -> Provider:
    config = settings.provider_config(name)
    timeout = httpx2.Timeout(settings.llm_request_timeout_s, connect=settings.llm_connect_timeout_s)
    headers = dict(settings.llm_extra_headers) or None
    if name == "openai":
        return OpenAICompatibleProvider(
            "openai",
            AsyncOpenAI(
                api_key=settings.openai_api_key.get_secret_value(),
                base_url=settings.openai_base_url or None,
                timeout=timeout,
                max_retries=0,  # the router retries, so that every attempt is seen and priced
                default_headers=headers,
            ),
            config.model,
            stream=settings.llm_stream,
            send_temperature=config.send_temperature,
        )
    if name == "local":
        return OpenAICompatibleProvider(
            "local",
            AsyncOpenAI(
                # Local servers mostly ignore the key, but the SDK wants one.
                api_key=settings.local_llm_api_key.get_secret_value() or "local",
                base_url=settings.local_llm_base_url,
                timeout=timeout,
                max_retries=0,
                default_headers=headers,
            ),
            config.model,
            stream=settings.llm_stream,
            output_mode="json_object"
            if settings.local_llm_output == "json_object"
            else "json_schema",
            send_temperature=config.send_temperature,
            legacy_max_tokens=True,
        )
    if name == "anthropic":
        return AnthropicProvider(
            AsyncAnthropic(
                api_key=settings.anthropic_api_key.get_secret_value(),
                base_url=settings.anthropic_base_url or None,
                timeout=timeout,
                max_retries=0,
                default_headers=headers,
            ),
            config.model,
            stream=settings.llm_stream,
        )
    return OfflineProvider()
