"""The generation engine: LLM providers behind one router with budget, rate limits and a ledger.

`router.build_router(settings, sessions)` gives an `LLMRouter`; `LLMRouter.generate(LLMRequest)`
returns a schema-valid `LLMResult` or raises an `LLMError`. This package root only re-exports
the types so that settings can import them without pulling in the SDKs.
"""

from infou_generation.llm.types import (
    BudgetExceededError,
    InvalidOutputError,
    LLMError,
    LLMRequest,
    LLMResult,
    ProviderRejectedError,
    ProviderUnavailableError,
    RateLimitedError,
    TaskKind,
)

__all__ = [
    "BudgetExceededError",
    "InvalidOutputError",
    "LLMError",
    "LLMRequest",
    "LLMResult",
    "ProviderRejectedError",
    "ProviderUnavailableError",
    "RateLimitedError",
    "TaskKind",
]
