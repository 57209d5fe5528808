"""Production refuses to serve the offline provider's filler unless told to."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from infou_generation.settings import GenerationSettings
from infou_libs.crypto import generate_key

PRODUCTION: dict[str, Any] = {
    "environment": "production",
    "session_token_secret": "a-real-production-secret-0123456789",
    "database_url": "postgresql+asyncpg://infou:secret@db.internal:5432/infou",
}


@pytest.fixture(autouse=True)
def data_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every other production setting is right, so only the provider question is left."""
    monkeypatch.setenv("INFOU_DATA_KEYS", f"k1:{generate_key()}")


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
        # An in-cluster model sits at a private address: allowed on purpose.
        {"local_llm_base_url": "http://vllm.internal:8000/v1", "llm_allow_private_urls": True},
    ],
)
def test_production_with_a_real_provider_starts(provider: dict[str, Any]) -> None:
    settings = GenerationSettings(**PRODUCTION, **provider)
    assert "offline" not in settings.route("article")


def test_development_still_falls_back_to_offline() -> None:
    assert GenerationSettings(environment="development").route("article") == ["offline"]
