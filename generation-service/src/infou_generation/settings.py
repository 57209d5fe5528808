"""generation-service settings (prefix INFOU_)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from infou_generation.llm.types import PROVIDER_NAMES, TASK_KINDS, ProviderName, TaskKind
from infou_libs.messaging import RETRY_BACKOFF_SECONDS
from infou_libs.settings import CommonSettings, private_address_reason


class LLMProviderConfig(BaseModel):
    """One row of the provider table (PRD §5.3), prices split into input and output per token."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Empty: the provider's own model setting (INFOU_OPENAI_MODEL, …) names the model.
    model: str = ""
    input_usd_per_token: Decimal = Field(default=Decimal(0), ge=0)
    output_usd_per_token: Decimal = Field(default=Decimal(0), ge=0)
    # None: cached input tokens cost as much as the others.
    cached_input_usd_per_token: Decimal | None = Field(default=None, ge=0)
    requests_per_minute: int = Field(default=600, gt=0)
    tokens_per_minute: int = Field(default=1_000_000, gt=0)
    use_cases: tuple[str, ...] = ()
    # Reasoning models reject `temperature`; switch it off for them.
    send_temperature: bool = True


# PRD §5.3, with each price split into what the provider charges for input and for output.
DEFAULT_PROVIDERS: dict[str, dict[str, Any]] = {
    "openai": {
        "input_usd_per_token": "0.000002",
        "output_usd_per_token": "0.000008",
        "cached_input_usd_per_token": "0.0000005",
        "requests_per_minute": 10_000,
        "tokens_per_minute": 2_000_000,
        "use_cases": ["high_quality_generation", "complex_topics"],
    },
    "anthropic": {
        "input_usd_per_token": "0.000003",
        "output_usd_per_token": "0.000015",
        "cached_input_usd_per_token": "0.0000003",
        "requests_per_minute": 5_000,
        "tokens_per_minute": 800_000,
        "use_cases": ["balanced_cost_quality", "creative_content"],
    },
    "local": {
        "input_usd_per_token": "0.000001",
        "output_usd_per_token": "0.000001",
        "requests_per_minute": 1_000,
        "tokens_per_minute": 500_000,
        "use_cases": ["cost_optimization", "privacy_sensitive"],
    },
    "offline": {
        "requests_per_minute": 100_000,
        "tokens_per_minute": 100_000_000,
        "use_cases": ["no_provider_configured"],
    },
}

# Which providers a task tries, in order; providers that are not configured are skipped.
DEFAULT_ROUTES: dict[TaskKind, list[ProviderName]] = {
    "subtopics": ["anthropic", "openai", "local"],
    "curriculum": ["openai", "anthropic", "local"],
    "article": ["anthropic", "openai", "local"],
    "level_conversion": ["local", "anthropic", "openai"],
}


class GenerationSettings(CommonSettings):
    service_name: str = "generation"
    grpc_port: int = Field(default=50053, ge=0, le=65535)  # the gateway's default address
    openai_api_key: SecretStr = SecretStr("")
    openai_base_url: str = ""
    openai_model: str = "gpt-4.1"
    anthropic_api_key: SecretStr = SecretStr("")
    anthropic_base_url: str = ""
    anthropic_model: str = "claude-sonnet-4-6"
    local_llm_base_url: str = ""
    local_llm_api_key: SecretStr = SecretStr("")
    local_llm_model: str = "llama-3-70b"
    # json_schema where the server supports it; json_object (JSON mode + validation) otherwise.
    local_llm_output: str = Field(default="json_schema", pattern="^(json_schema|json_object)$")
    worker_concurrency: int = Field(default=4, ge=1, le=64)
    worker_heartbeat_seconds: float = Field(default=5.0, gt=0, le=60)
    # A job whose worker stops answering (killed mid-job) is redelivered after this long.
    jobs_ack_wait_seconds: float = Field(default=30.0, ge=1, le=600)
    # A failed job is retried after these delays (one retry per entry), then given up.
    jobs_retry_backoff_seconds: list[Annotated[float, Field(ge=0, le=3600)]] = Field(
        default_factory=lambda: list(RETRY_BACKOFF_SECONDS), min_length=1, max_length=10
    )
    # catalog-service, to validate main topics and read their curated sub-topics.
    catalog_addr: str = "127.0.0.1:50051"
    # Personalised sub-topics (and the learner input behind them) expire after this many days.
    generated_subtopics_ttl_days: int = Field(default=90, ge=1, le=3650)

    llm_providers: dict[ProviderName, LLMProviderConfig] = Field(
        default_factory=lambda: _default_providers()
    )
    llm_routes: dict[TaskKind, list[ProviderName]] = Field(
        default_factory=lambda: _default_routes()
    )
    llm_stream: bool = True
    llm_request_timeout_s: float = Field(default=120.0, gt=0, le=900)
    llm_connect_timeout_s: float = Field(default=10.0, gt=0, le=120)
    llm_max_retries: int = Field(default=3, ge=0, le=10)
    llm_backoff_base_s: float = Field(default=1.0, ge=0, le=60)
    llm_backoff_max_s: float = Field(default=30.0, ge=0, le=600)
    # A retry-after longer than this moves on to the next provider instead of waiting.
    llm_max_rate_limit_wait_s: float = Field(default=60.0, ge=0, le=3600)
    # Headers sent on every provider request (e.g. the fake LLM server's x-fake-* knobs).
    llm_extra_headers: dict[str, str] = Field(default_factory=dict)
    # An in-cluster local model lives at a private address; production refuses one otherwise.
    llm_allow_private_urls: bool = False
    daily_budget_usd: Decimal = Field(default=Decimal("100"), ge=0)
    llm_budget_warn_ratio: float = Field(default=0.8, gt=0, le=1)
    llm_budget_timezone: str = "UTC"

    @field_validator("llm_providers", mode="before")
    @classmethod
    def _merge_provider_table(cls, value: Any) -> Any:
        return _provider_table(value) if isinstance(value, dict) else value

    @field_validator("llm_routes", mode="before")
    @classmethod
    def _merge_routes(cls, value: Any) -> Any:
        return _routes(value) if isinstance(value, dict) else value

    @field_validator("llm_budget_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    def production_problems(self) -> list[str]:
        problems = super().production_problems()
        if not self.llm_allow_private_urls:
            for name in ("openai_base_url", "anthropic_base_url", "local_llm_base_url"):
                reason = private_address_reason(getattr(self, name))
                if reason:
                    problems.append(
                        f"INFOU_{name.upper()} {reason} (set INFOU_LLM_ALLOW_PRIVATE_URLS=true "
                        "for an in-cluster model)"
                    )
        return problems

    def configured_providers(self) -> list[str]:
        """Providers with credentials or a URL; `offline` only when none is configured."""
        providers = []
        if self.openai_api_key.get_secret_value():
            providers.append("openai")
        if self.anthropic_api_key.get_secret_value():
            providers.append("anthropic")
        if self.local_llm_base_url:
            providers.append("local")
        return providers or ["offline"]

    def provider_config(self, name: ProviderName) -> LLMProviderConfig:
        """The provider's table row with its model name resolved."""
        config = self.llm_providers[name]
        if config.model:
            return config
        models = {
            "openai": self.openai_model,
            "anthropic": self.anthropic_model,
            "local": self.local_llm_model,
            "offline": "offline",
        }
        return config.model_copy(update={"model": models[name]})

    def route(self, task: TaskKind) -> list[ProviderName]:
        """Providers for a task, in order, keeping only configured ones (offline when none is)."""
        configured = self.configured_providers()
        if configured == ["offline"]:
            return ["offline"]
        chosen = [p for p in self.llm_routes.get(task, []) if p in configured]
        # A route naming none of the configured providers still uses what is configured.
        return chosen or [p for p in PROVIDER_NAMES if p in configured]


def _default_providers() -> dict[ProviderName, LLMProviderConfig]:
    return {
        name: LLMProviderConfig.model_validate(DEFAULT_PROVIDERS[name]) for name in PROVIDER_NAMES
    }


def _default_routes() -> dict[TaskKind, list[ProviderName]]:
    return {task: list(names) for task, names in DEFAULT_ROUTES.items()}


def _provider_table(overrides: dict[str, Any]) -> dict[str, Any]:
    """The default table with the given rows merged over it field by field."""
    unknown = set(overrides) - set(PROVIDER_NAMES)
    if unknown:
        raise ValueError(f"unknown LLM providers {sorted(unknown)}; known: {list(PROVIDER_NAMES)}")
    table: dict[str, Any] = {}
    for name in PROVIDER_NAMES:
        row = overrides.get(name, {})
        if isinstance(row, LLMProviderConfig):
            table[name] = row
        else:
            table[name] = {**DEFAULT_PROVIDERS[name], **row}
    return table


def _routes(overrides: dict[str, Any]) -> dict[str, Any]:
    unknown = set(overrides) - set(TASK_KINDS)
    if unknown:
        raise ValueError(f"unknown tasks {sorted(unknown)}; known: {list(TASK_KINDS)}")
    routes: dict[str, Any] = {task: names for task, names in _default_routes().items()}
    routes.update(overrides)
    return routes
