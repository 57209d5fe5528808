import pytest
from pydantic import ValidationError

from infou_libs.crypto import generate_key
from infou_libs.settings import CommonSettings, mask_url


def test_production_refuses_the_development_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFOU_ENVIRONMENT", "production")
    monkeypatch.setenv("INFOU_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/infou")
    with pytest.raises(ValidationError, match="INFOU_DATABASE_URL"):
        CommonSettings()


def test_production_with_real_settings_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFOU_ENVIRONMENT", "production")
    monkeypatch.setenv("INFOU_DATABASE_URL", "postgresql+asyncpg://app:pw@db.internal/infou")
    monkeypatch.setenv("INFOU_DATA_KEYS", f"k1:{generate_key()}")
    assert CommonSettings().environment == "production"
    # The token secret is session-service's alone: no other process holds it.
    assert not hasattr(CommonSettings(), "session_token_secret")


def test_production_names_every_unsafe_value(monkeypatch: pytest.MonkeyPatch) -> None:
    from infou_gateway.settings import GatewaySettings
    from infou_generation.settings import GenerationSettings

    monkeypatch.setenv("INFOU_ENVIRONMENT", "production")
    monkeypatch.setenv("INFOU_DATABASE_URL", "postgresql+asyncpg://app:pw@db.internal/infou")
    monkeypatch.delenv("INFOU_DATA_KEYS", raising=False)
    monkeypatch.setenv("INFOU_CORS_ORIGINS", '["*"]')
    monkeypatch.setenv("INFOU_RATE_LIMIT_PER_MINUTE", "0")
    with pytest.raises(ValidationError) as refused:
        GatewaySettings()
    message = str(refused.value)
    for name in ("INFOU_CORS_ORIGINS", "INFOU_RATE_LIMIT_PER_MINUTE"):
        assert name in message
    # The gateway holds no database and no personal data: it needs no keyring.
    assert "INFOU_DATA_KEYS" not in message

    with pytest.raises(ValidationError, match="INFOU_DATA_KEYS is missing"):
        GenerationSettings()
    monkeypatch.setenv("INFOU_DATA_KEYS", f"k1:{generate_key()}")
    monkeypatch.setenv("INFOU_LOCAL_LLM_BASE_URL", "http://169.254.169.254/v1")
    monkeypatch.setenv("INFOU_OPENAI_BASE_URL", "http://localhost:8080/v1")
    with pytest.raises(ValidationError) as refused:
        GenerationSettings()
    assert "INFOU_LOCAL_LLM_BASE_URL resolves to a non-public address (169.254.169.254)" in str(
        refused.value
    )
    assert "INFOU_OPENAI_BASE_URL resolves to a non-public address" in str(refused.value)
    monkeypatch.setenv("INFOU_LLM_ALLOW_PRIVATE_URLS", "true")
    assert GenerationSettings().local_llm_base_url == "http://169.254.169.254/v1"


def test_a_malformed_keyring_is_refused_in_any_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INFOU_DATA_KEYS", "k1:short")
    with pytest.raises(ValidationError, match="INFOU_DATA_KEYS"):
        CommonSettings()


def test_invalid_value_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFOU_GRPC_DEADLINE_SECONDS", "-1")
    with pytest.raises(ValidationError, match="grpc_deadline_seconds"):
        CommonSettings()


def test_mask_url_hides_passwords() -> None:
    assert mask_url("postgresql://app:s3cret@db:5432/x") == "postgresql://app:***@db:5432/x"
    assert mask_url("nats://127.0.0.1:4222") == "nats://127.0.0.1:4222"
