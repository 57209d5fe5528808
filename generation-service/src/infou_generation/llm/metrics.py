"""Prometheus metrics of the generation engine: tokens, cost, latency, budget, rate limits."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

LLM_CALLS = Counter(
    "infou_llm_calls_total",
    "LLM provider calls by outcome (ok, rate_limited, error, invalid_output, budget_refused)",
    ["provider", "task", "status"],
)
LLM_TOKENS = Counter(
    "infou_llm_tokens_total",
    "Tokens billed by LLM providers, by kind (input, output, cached)",
    ["provider", "model", "task", "kind"],
)
LLM_COST = Counter(
    "infou_llm_cost_usd_total", "What LLM calls cost, in US dollars", ["provider", "model", "task"]
)
CACHE_SAVED_USD = Counter(
    "infou_generation_cache_saved_usd_total",
    "What content served from the cache cost when it was generated, in US dollars (money saved)",
    ["task"],
)
LLM_LATENCY = Histogram(
    "infou_llm_call_duration_seconds",
    "LLM provider call time, by outcome",
    ["provider", "task", "status"],
    buckets=(0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300),
)
LLM_BUDGET_RATIO = Gauge(
    "infou_llm_budget_ratio", "Today's LLM spend as a share of the daily budget"
)
LLM_BUDGET_WARNINGS = Counter(
    "infou_llm_budget_warnings_total", "Days on which spend crossed the budget warning ratio"
)
LLM_BUDGET_REFUSALS = Counter(
    "infou_llm_budget_refusals_total",
    "Calls not made because the daily budget had no room for them",
    ["provider", "task"],
)
LLM_RATE_LIMIT_WAITS = Counter(
    "infou_llm_rate_limit_waits_total",
    "Waits for a rate limit, by source (provider: a 429; client: our own token bucket; "
    "client_refused: our bucket's wait was too long, the call moved on)",
    ["provider", "source"],
)
LLM_RATE_LIMIT_WAIT_SECONDS = Counter(
    "infou_llm_rate_limit_wait_seconds_total",
    "Seconds spent waiting for rate limits",
    ["provider", "source"],
)
LLM_CALLS_EXHAUSTED = Counter(
    "infou_llm_job_calls_exhausted_total",
    "Jobs that made all the provider calls INFOU_LLM_MAX_CALLS_PER_JOB grants, by task",
    ["task"],
)
