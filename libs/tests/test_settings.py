import pytest
from pydantic import ValidationError

from infou_libs.settings import CommonSettings, mask_url


def test_production_refuses_the_development_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFOU_ENVIRONMENT", "production")
    monkeypatch.setenv("INFOU_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/infou")
    with pytest.raises(ValidationError, match="INFOU_DATABASE_URL"):
        CommonSettings()


def test_production_with_real_settings_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFOU_ENVIRONMENT", "production")
    monkeypatch.setenv("INFOU_DATABASE_URL", "postgresql+asyncpg://app:pw@db.internal/infou")
    assert CommonSettings().environment == "production"
    # The token secret is session-service's alone: no other process holds it.
    assert not hasattr(CommonSettings(), "session_token_secret")


def test_invalid_value_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFOU_GRPC_DEADLINE_SECONDS", "-1")
    with pytest.raises(ValidationError, match="grpc_deadline_seconds"):
        CommonSettings()


def test_mask_url_hides_passwords() -> None:
    assert mask_url("postgresql://app:s3cret@db:5432/x") == "postgresql://app:***@db:5432/x"
    assert mask_url("nats://127.0.0.1:4222") == "nats://127.0.0.1:4222"
