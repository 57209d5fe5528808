"""session-service's own settings: the token secret lives here and nowhere else."""

import pytest
from pydantic import ValidationError

from infou_session.settings import SessionSettings


def test_production_refuses_the_development_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFOU_ENVIRONMENT", "production")
    monkeypatch.setenv("INFOU_DATABASE_URL", "postgresql+asyncpg://app:pw@db.internal/infou")
    with pytest.raises(ValidationError, match="INFOU_SESSION_TOKEN_SECRET"):
        SessionSettings()


def test_production_with_real_settings_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFOU_ENVIRONMENT", "production")
    monkeypatch.setenv("INFOU_DATABASE_URL", "postgresql+asyncpg://app:pw@db.internal/infou")
    monkeypatch.setenv("INFOU_SESSION_TOKEN_SECRET", "a-real-secret-from-the-vault")
    assert SessionSettings().environment == "production"
