"""session-service settings (prefix INFOU_)."""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field, SecretStr

from infou_libs.settings import CommonSettings

DEV_SESSION_TOKEN_SECRET = "dev-only-session-token-secret-change-me"  # noqa: S105


class SessionSettings(CommonSettings):
    service_name: str = "session"
    grpc_port: int = Field(default=50052, ge=0, le=65535)  # the gateway's default address
    session_ttl_days: int = Field(default=30, ge=1, le=365)
    catalog_addr: str = "127.0.0.1:50051"
    generation_addr: str = "127.0.0.1:50053"
    # Articles per selected sub-topic when the request does not say (PRD option
    # max_articles_per_subtopic, 1-20).
    default_articles_per_subtopic: int = Field(default=3, ge=1, le=20)
    max_sub_topics_per_session: int = Field(default=10, ge=1, le=50)
    # Articles one session may ask for in all (sub-topics × max_articles_per_subtopic).
    max_articles_per_session: int = Field(default=30, ge=1, le=1000)
    # The estimate returned when a session is created (the real cost comes from the ledger).
    estimated_cost_per_article_usd: Decimal = Field(default=Decimal("0.03"), ge=0)
    estimated_cost_per_curriculum_usd: Decimal = Field(default=Decimal("0.02"), ge=0)
    # Main topics kept in process for creates (topics.py); dropped at once by a content change
    # announced on events.catalog.changed. 0 asks catalog-service on every create.
    topic_cache_seconds: float = Field(default=60.0, ge=0, le=3600)
    # Generation results handled at once (each takes its session's row lock).
    result_consumer_concurrency: int = Field(default=4, ge=1, le=64)
    # Keys the hashes of session access tokens; only this service makes and checks tokens.
    session_token_secret: SecretStr = SecretStr(DEV_SESSION_TOKEN_SECRET)

    def production_problems(self) -> list[str]:
        problems = super().production_problems()
        secret = self.session_token_secret.get_secret_value()
        if secret == DEV_SESSION_TOKEN_SECRET:
            problems.append("INFOU_SESSION_TOKEN_SECRET is still the development default")
        elif len(secret.encode()) < 32:
            problems.append("INFOU_SESSION_TOKEN_SECRET must be at least 32 bytes")
        return problems
