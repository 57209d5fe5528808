"""Production refuses to serve the offline provider's filler unless told to."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from infou_generation.settings import GenerationSettings

PRODUCTION: dict[str, Any] = {
    "environment": "production",
    "session_token_secret": "a-real-production-secret-0123456789",
    "database_url": "postgresql+asyncpg://infou:secret@db.internal:5432/infou",
}


def test_production_without_a_provider_refuses_to_start_naming_the_offline_provider(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("INFOU_ALLOW_OFFLINE_PROVIDER", raising=False)
    with pytest.raises(ValidationError, match="offline") as caught:
        GenerationSettings(**PRODUCTION)
    assert "INFOU_ALLOW_OFFLINE_PROVIDER" in str(caught.value)


def test_the_environment_variable_allows_it_on_purpose(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFOU_ALLOW_OFFLINE_PROVIDER", "true")
    settings = GenerationSettings(**PRODUCTION)
    assert settings.route("article") == ["offline"]


@pytest.mark.parametrize(
    "provider",
    [
        {"openai_api_key": "sk-real"},
        {"anthropic_api_key": "sk-ant-real"},
        {"local_llm_base_url": "http://vllm.internal:8000/v1"},
    ],
)
def test_production_with_a_real_provider_starts(provider: dict[str, str]) -> None:
    settings = GenerationSettings(**PRODUCTION, **provider)
    assert "offline" not in settings.route("article")


def test_development_still_falls_back_to_offline() -> None:
    assert GenerationSettings(environment="development").route("article") == ["offline"]
