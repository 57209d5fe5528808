"""What the generation engine takes and gives: requests, results and the errors it raises."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, get_args

from infou_libs.errors import BudgetExceeded

TaskKind = Literal[
    "subtopics",
    "curriculum",
    "article",
    "level_conversion",
    "quality_judge",
    "article_adaptation",
]
ProviderName = Literal["openai", "anthropic", "local", "offline"]

TASK_KINDS: tuple[TaskKind, ...] = get_args(TaskKind)
PROVIDER_NAMES: tuple[ProviderName, ...] = get_args(ProviderName)


@dataclass(frozen=True)
class LLMRequest:
    """One structured-output generation: instructions, the data and the shape of the answer."""

    task: TaskKind
    system: str
    user: str
    schema_name: str
    json_schema: dict[str, Any]
    context: dict[str, Any]
    max_output_tokens: int = 4000
    temperature: float = 0.7
    session_id: str | None = None
    generation_id: str | None = None
    # The job this call serves: its calls over every delivery count against one allowance
    # (INFOU_LLM_MAX_CALLS_PER_JOB); None: not counted.
    job_id: str | None = None


@dataclass(frozen=True)
class LLMResult:
    """A schema-valid answer and what it cost (summed over every attempt that produced it)."""

    data: dict[str, Any]
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    cost_usd: Decimal
    latency_ms: int


@dataclass(frozen=True)
class TokenUsage:
    """Tokens a provider billed for one call (input includes the cached part)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    # Input written to the provider's prompt cache (Anthropic prices it above plain input).
    cache_write_tokens: int = 0


class LLMError(Exception):
    """Base of every error the engine raises; `billed` is what the failed call still cost."""

    def __init__(
        self, message: str, *, provider: str | None = None, billed: TokenUsage | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.billed = billed or TokenUsage()


class RateLimitedError(LLMError):
    """The provider answered 429 (or our own limiter would wait too long)."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        provider: str | None = None,
        billed: TokenUsage | None = None,
    ) -> None:
        super().__init__(message, provider=provider, billed=billed)
        self.retry_after = retry_after


class ProviderUnavailableError(LLMError):
    """5xx, timeout, dropped connection or cut stream: worth retrying."""


class ProviderRejectedError(LLMError):
    """The provider refused the request itself (4xx other than 429): retrying will not help."""


class InvalidOutputError(LLMError):
    """The answer was not a JSON object valid against the schema, even after one repair."""


class NoProviderLeftError(LLMError):
    """The task's route names no provider (or none besides those excluded)."""


class ProvidersDownError(LLMError):
    """Every provider of the task's route is cooling down (its circuit breaker is open): no
    call goes out, and retrying before the cool-down ends makes none either.
    `rate_limited`: this generation met rate limits (code LLM_RATE_LIMIT)."""

    def __init__(self, message: str, *, rate_limited: bool = False) -> None:
        super().__init__(message)
        self.rate_limited = rate_limited


class CallsExhaustedError(LLMError):
    """The job has made every provider call its allowance grants (INFOU_LLM_MAX_CALLS_PER_JOB,
    counted over every attempt and delivery): it fails instead of calling again."""

    def __init__(self, message: str, *, rate_limited: bool = False) -> None:
        super().__init__(message)
        self.rate_limited = rate_limited


class QualityBelowThresholdError(LLMError):
    """Every provider's answer stayed under the quality gate's threshold (code
    QUALITY_BELOW_THRESHOLD): the article is failed, never served."""

    def __init__(self, message: str, *, report: Any = None, provider: str | None = None) -> None:
        super().__init__(message, provider=provider)
        self.report = report


class BudgetExceededError(LLMError, BudgetExceeded):
    """The daily LLM budget has no room for this call (code LLM_BUDGET_EXCEEDED)."""


@dataclass(frozen=True)
class Completion:
    """What one provider call returned, before parsing."""

    text: str
    usage: TokenUsage
    model: str
    finish_reason: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)
