"""session-service's own settings: the token secret lives here and nowhere else."""

import pytest
from pydantic import ValidationError

from infou_libs.crypto import generate_key
from infou_session.settings import SessionSettings


def test_production_refuses_the_development_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFOU_ENVIRONMENT", "production")
    monkeypatch.setenv("INFOU_DATABASE_URL", "postgresql+asyncpg://app:pw@db.internal/infou")
    with pytest.raises(ValidationError, match="INFOU_SESSION_TOKEN_SECRET"):
        SessionSettings()


def test_production_with_real_settings_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFOU_ENVIRONMENT", "production")
    monkeypatch.setenv("INFOU_DATABASE_URL", "postgresql+asyncpg://app:pw@db.internal/infou")
    monkeypatch.setenv("INFOU_SESSION_TOKEN_SECRET", "a-real-secret-from-the-vault-0123456789")
    monkeypatch.setenv("INFOU_DATA_KEYS", f"k1:{generate_key()}")
    assert SessionSettings().environment == "production"


def test_production_refuses_a_short_secret_and_a_missing_keyring(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INFOU_ENVIRONMENT", "production")
    monkeypatch.setenv("INFOU_DATABASE_URL", "postgresql+asyncpg://app:pw@db.internal/infou")
    monkeypatch.setenv("INFOU_SESSION_TOKEN_SECRET", "x")
    monkeypatch.delenv("INFOU_DATA_KEYS", raising=False)
    with pytest.raises(ValidationError) as refused:
        SessionSettings()
    message = str(refused.value)
    assert "INFOU_SESSION_TOKEN_SECRET must be at least 32 bytes" in message
    assert "INFOU_DATA_KEYS is missing" in message
