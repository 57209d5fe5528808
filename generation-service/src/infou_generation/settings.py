"""generation-service settings (prefix INFOU_)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from infou_libs.settings import CommonSettings


class GenerationSettings(CommonSettings):
    service_name: str = "generation"
    openai_api_key: SecretStr = SecretStr("")
    openai_base_url: str = ""
    anthropic_api_key: SecretStr = SecretStr("")
    anthropic_base_url: str = ""
    local_llm_base_url: str = ""
    worker_concurrency: int = Field(default=4, ge=1, le=64)
    worker_heartbeat_seconds: float = Field(default=5.0, gt=0, le=60)

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
