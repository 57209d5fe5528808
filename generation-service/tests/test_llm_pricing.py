"""Prices per (provider, model), and Anthropic's prompt-cache writes priced apart."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infou_devtools.fakellm import FakeLLMControl
from infou_generation.llm.router import build_router, price
from infou_generation.llm.types import LLMRequest, TokenUsage
from infou_generation.settings import GenerationSettings


def test_a_model_listed_in_the_row_costs_its_own_prices() -> None:
    settings = GenerationSettings(openai_model="gpt-4.1-mini-2025-04-14")
    config = settings.provider_config("openai")
    assert config.model == "gpt-4.1-mini-2025-04-14"  # a dated name takes its family's prices
    assert config.input_usd_per_token == Decimal("0.0000004")
    assert config.output_usd_per_token == Decimal("0.0000016")
    usage = TokenUsage(1000, 100, 0)
    assert price(config, usage) == Decimal("0.00056")

    default = GenerationSettings().provider_config("openai")
    assert default.model == "gpt-4.1"
    assert default.input_usd_per_token == Decimal("0.000002")
    assert price(default, usage) == Decimal("0.0028")


def test_the_longest_matching_model_name_wins() -> None:
    settings = GenerationSettings(
        openai_model="gpt-4.1-nano",
        llm_providers={
            "openai": {
                "model_prices": {
                    "gpt-4.1": {"input_usd_per_token": "1", "output_usd_per_token": "1"},
                    "gpt-4.1-nano": {"input_usd_per_token": "2", "output_usd_per_token": "3"},
                }
            }
        },
    )
    config = settings.provider_config("openai")
    assert (config.input_usd_per_token, config.output_usd_per_token) == (Decimal(2), Decimal(3))
    # A model priced nowhere keeps the row's prices.
    other = settings.llm_providers["openai"].for_model("o3")
    assert other.input_usd_per_token == Decimal("0.000002")


def test_model_prices_are_validated() -> None:
    with pytest.raises(ValidationError):
        GenerationSettings(
            llm_providers={"openai": {"model_prices": {"x": {"input_usd_per_token": "-1"}}}}
        )


def test_cache_writes_cost_their_own_price_and_reads_theirs() -> None:
    config = GenerationSettings().provider_config("anthropic")
    assert config.cache_write_usd_per_token == Decimal("0.00000375")
    usage = TokenUsage(
        input_tokens=1000, output_tokens=0, cached_tokens=200, cache_write_tokens=300
    )
    expected = (
        500 * config.input_usd_per_token + 200 * Decimal("0.0000003") + 300 * Decimal("0.00000375")
    )
    assert price(config, usage) == expected
    # Without a write price, writes cost as plain input.
    plain = config.model_copy(update={"cache_write_usd_per_token": None})
    assert price(plain, usage) == 800 * config.input_usd_per_token + 200 * Decimal("0.0000003")


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
async def test_anthropic_cache_writes_are_priced_from_the_usage_it_reports(
    stream: bool,
    llm_settings: Callable[..., GenerationSettings],
    generation_sessions: async_sessionmaker[AsyncSession],
    fake_llm: FakeLLMControl,
) -> None:
    await fake_llm.configure(cache_write_tokens=40)
    settings = llm_settings(llm_routes={"article": ["anthropic"]}, llm_stream=stream)
    router = build_router(settings, generation_sessions)
    try:
        result = await router.generate(
            LLMRequest(
                task="article",
                system="Answer in JSON with a short Korean title. " * 20,
                user="<task_context>{}</task_context>",
                schema_name="infou_test_plan",
                json_schema={
                    "type": "object",
                    "properties": {"title": {"type": "string"}},
                    "required": ["title"],
                },
                context={},
                max_output_tokens=100,
            )
        )
    finally:
        await router.aclose()
    config = router.configs["anthropic"]
    assert config.cache_write_usd_per_token is not None
    as_plain = price(config, TokenUsage(result.input_tokens, result.output_tokens, 0))
    assert result.input_tokens > 40
    surcharge = 40 * (config.cache_write_usd_per_token - config.input_usd_per_token)
    assert result.cost_usd - as_plain == surcharge > 0
