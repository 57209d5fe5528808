"""personalisation encrypted at rest (AES-256-GCM envelope, infou_libs.crypto)

Revision ID: 8eaa2a2a5ffb
Revises: 369fd5246c54
Create Date: 2026-12-03 07:40:00.000000
"""

from collections.abc import Sequence

from sqlalchemy.dialects import postgresql

from infou_libs.encrypted_columns import (
    EncryptedColumn,
    migrate_to_ciphertext,
    migrate_to_plaintext,
)

revision: str = "8eaa2a2a5ffb"
down_revision: str | None = "369fd5246c54"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PERSONALIZATION = EncryptedColumn(
    "session", "learning_sessions", "personalization_settings", ("id",)
)


def upgrade() -> None:
    migrate_to_ciphertext(PERSONALIZATION, was_jsonb=True)


def downgrade() -> None:
    migrate_to_plaintext(PERSONALIZATION, postgresql.JSONB(), was_jsonb=True, not_null_default="{}")
