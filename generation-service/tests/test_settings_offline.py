"""Production refuses to serve the offline provider's filler unless told to."""

from __future__ import annotations

import os
import subprocess
import sys
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


def test_the_production_process_refuses_to_start_naming_the_offline_provider() -> None:
    """`python -m infou_generation` (what the image runs) stops before serving anything."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFOU_")}
    env |= {
        "INFOU_ENVIRONMENT": "production",
        "INFOU_SESSION_TOKEN_SECRET": PRODUCTION["session_token_secret"],
        "INFOU_DATABASE_URL": PRODUCTION["database_url"],
        "INFOU_DATA_KEYS": f"k1:{generate_key()}",
    }
    done = subprocess.run(
        [sys.executable, "-m", "infou_generation", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "`offline` provider" in done.stderr
    assert "INFOU_ALLOW_OFFLINE_PROVIDER=true" in done.stderr


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
