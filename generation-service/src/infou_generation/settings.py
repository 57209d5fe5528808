"""generation-service settings (prefix INFOU_)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from infou_generation.llm.types import PROVIDER_NAMES, TASK_KINDS, ProviderName, TaskKind
from infou_libs.messaging import RETRY_BACKOFF_SECONDS
from infou_libs.settings import CommonSettings, private_address_reason


class ModelPrice(BaseModel):
    """What one model of a provider costs, per token."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_usd_per_token: Decimal = Field(ge=0)
    output_usd_per_token: Decimal = Field(ge=0)
    cached_input_usd_per_token: Decimal | None = Field(default=None, ge=0)
    cache_write_usd_per_token: Decimal | None = Field(default=None, ge=0)


class LLMProviderConfig(BaseModel):
    """One row of the provider table (PRD §5.3), prices split into input and output per token."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Empty: the provider's own model setting (INFOU_OPENAI_MODEL, …) names the model.
    model: str = ""
    input_usd_per_token: Decimal = Field(default=Decimal(0), ge=0)
    output_usd_per_token: Decimal = Field(default=Decimal(0), ge=0)
    # None: cached input tokens cost as much as the others.
    cached_input_usd_per_token: Decimal | None = Field(default=None, ge=0)
    # Input written to the prompt cache (Anthropic: 1.25 × input); None: as plain input.
    cache_write_usd_per_token: Decimal | None = Field(default=None, ge=0)
    # Prices of particular models (a name, or the start of dated names: "gpt-4.1-mini" covers
    # "gpt-4.1-mini-2025-04-14"); a model named nowhere costs the row's prices.
    model_prices: dict[str, ModelPrice] = Field(default_factory=dict)
    requests_per_minute: int = Field(default=600, gt=0)
    tokens_per_minute: int = Field(default=1_000_000, gt=0)
    use_cases: tuple[str, ...] = ()
    # Reasoning models reject `temperature`; switch it off for them.
    send_temperature: bool = True

    def for_model(self, model: str) -> LLMProviderConfig:
        """This row for `model`, at that model's prices when the row lists them."""
        matches = [name for name in self.model_prices if model.startswith(name)]
        update: dict[str, Any] = {"model": model}
        if matches:
            update.update(self.model_prices[max(matches, key=len)].model_dump())
        return self.model_copy(update=update)


# PRD §5.3, with each price split into what the provider charges for input and for output.
DEFAULT_PROVIDERS: dict[str, dict[str, Any]] = {
    "openai": {
        "input_usd_per_token": "0.000002",
        "output_usd_per_token": "0.000008",
        "cached_input_usd_per_token": "0.0000005",
        "model_prices": {
            "gpt-4.1-mini": {
                "input_usd_per_token": "0.0000004",
                "output_usd_per_token": "0.0000016",
                "cached_input_usd_per_token": "0.0000001",
            },
            "gpt-4.1-nano": {
                "input_usd_per_token": "0.0000001",
                "output_usd_per_token": "0.0000004",
                "cached_input_usd_per_token": "0.000000025",
            },
        },
        "requests_per_minute": 10_000,
        "tokens_per_minute": 2_000_000,
        "use_cases": ["high_quality_generation", "complex_topics"],
    },
    "anthropic": {
        "input_usd_per_token": "0.000003",
        "output_usd_per_token": "0.000015",
        "cached_input_usd_per_token": "0.0000003",
        "cache_write_usd_per_token": "0.00000375",
        "model_prices": {
            "claude-haiku-4-5": {
                "input_usd_per_token": "0.000001",
                "output_usd_per_token": "0.000005",
                "cached_input_usd_per_token": "0.0000001",
                "cache_write_usd_per_token": "0.00000125",
            },
        },
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
    # Production refuses to serve the offline provider's template text unless this says so.
    allow_offline_provider: bool = False
    # After the heuristic quality gate passes an article, one LLM judge call (task
    # quality_judge, the cheapest configured model) must pass it too (content/judge.py).
    quality_llm_judge: bool = False
    worker_concurrency: int = Field(default=4, ge=1, le=64)
    # What this process serves: `all` (the gRPC API and the job workers), `api` (the API alone:
    # admissions and sub-topic requests answered by a process no job competes with) or `jobs`
    # (the job workers and consumers; its gRPC port serves health only in practice).
    process_role: Literal["all", "api", "jobs"] = "all"
    # A `jobs` process lowers its own CPU priority by this much (os.nice) as it starts: where
    # job workers share a machine with the request path (one box, the bench), the kernel then
    # gives the request path the CPU first. Nothing on a node where they do not share CPU.
    jobs_nice: int = Field(default=0, ge=0, le=19)
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
    # OpenAI's moderation model (used when an OpenAI key is set; a local check otherwise).
    moderation_model: str = "omni-moderation-latest"
    moderation_timeout_s: float = Field(default=10.0, gt=0, le=120)
    # Circuit breaker per provider and model: this many rate limits/outages within the window
    # open it for the cool-down (every worker then skips the provider); 0 switches it off.
    llm_breaker_failures: int = Field(default=3, ge=0, le=1000)
    llm_breaker_window_s: float = Field(default=30.0, gt=0, le=3600)
    llm_breaker_cooldown_s: float = Field(default=30.0, gt=0, le=3600)
    # Provider calls one job (a curriculum, an article, a conversion) may make in total, over
    # every retry, provider, regeneration and redelivery (counted in Redis); 0 switches it off.
    llm_max_calls_per_job: int = Field(default=8, ge=0, le=100)
    # Our shared RPM/TPM budget: a call that would wait longer goes to the next provider.
    llm_limiter_max_wait_s: float = Field(default=10.0, ge=0, le=120)
    # An in-cluster local model lives at a private address; production refuses one otherwise.
    llm_allow_private_urls: bool = False
    # At most what llm_budget_days.limit_usd (NUMERIC(14, 6)) stores.
    daily_budget_usd: Decimal = Field(default=Decimal("100"), ge=0, lt=Decimal("100000000"))
    llm_budget_warn_ratio: float = Field(default=0.8, gt=0, le=1)
    llm_budget_timezone: str = "UTC"
    # Admission (admission.py): the estimate is the observed cost per call times this margin.
    admission_estimate_margin: float = Field(default=1.0, ge=0.5, le=10)
    # An admission never released (its session stalled) stops holding budget after this long.
    admission_hold_seconds: float = Field(default=3600.0, ge=60, le=86400)
    # The share of the daily budget one client may hold or spend (API keys may carry their own).
    client_budget_share: float = Field(default=0.1, gt=0, le=1)
    # A session estimated above this is refused at creation (PRD: at most $0.50 a learner); 0: off.
    session_cost_cap_usd: Decimal = Field(default=Decimal("0.50"), ge=0)

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

    @model_validator(mode="after")
    def _production_needs_a_real_provider(self) -> GenerationSettings:
        if (
            self.environment == "production"
            and self.configured_providers() == ["offline"]
            and not self.allow_offline_provider
        ):
            raise ValueError(
                "no LLM provider is configured, so generation would serve the `offline` "
                "provider's template text in production; set INFOU_OPENAI_API_KEY, "
                "INFOU_ANTHROPIC_API_KEY or INFOU_LOCAL_LLM_BASE_URL, or "
                "INFOU_ALLOW_OFFLINE_PROVIDER=true to serve it on purpose"
            )
        return self

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
        """The provider's table row with its model name resolved, at that model's prices."""
        config = self.llm_providers[name]
        if config.model:
            return config.for_model(config.model)
        models = {
            "openai": self.openai_model,
            "anthropic": self.anthropic_model,
            "local": self.local_llm_model,
            "offline": "offline",
        }
        return config.for_model(models[name])

    def cheapest_provider(self) -> list[ProviderName]:
        """The configured real provider whose model costs least (input + output per token)."""
        real = [p for p in PROVIDER_NAMES if p != "offline" and p in self.configured_providers()]
        if not real:
            return []

        def cost(name: ProviderName) -> Decimal:
            config = self.provider_config(name)
            return config.input_usd_per_token + config.output_usd_per_token

        return [min(real, key=cost)]

    def route(self, task: TaskKind) -> list[ProviderName]:
        """Providers for a task, in order, keeping only configured ones (offline when none is)."""
        configured = self.configured_providers()
        if task == "quality_judge":
            # The judge goes to the cheapest configured model; none without a real provider.
            return self.cheapest_provider()
        if configured == ["offline"]:
            return ["offline"]
        if task == "article_adaptation":
            # A short personal section over a shared article: the cheapest model writes it.
            return self.cheapest_provider()
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
