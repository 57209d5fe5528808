"""personalisation input encrypted at rest (AES-256-GCM envelope, infou_libs.crypto)

Revision ID: d8fc7db4b5c3
Revises: c4f8a2d6e913
Create Date: 2026-12-03 07:40:00.000000
"""

from collections.abc import Sequence

from sqlalchemy.dialects import postgresql

from infou_libs.encrypted_columns import (
    EncryptedColumn,
    migrate_to_ciphertext,
    migrate_to_plaintext,
)

revision: str = "d8fc7db4b5c3"
down_revision: str | None = "c4f8a2d6e913"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REQUEST_INPUT = EncryptedColumn(
    "generation", "subtopic_generation_requests", "personalization_input", ("id",)
)
SUBTOPIC_INPUT = EncryptedColumn(
    "generation", "generated_sub_topics", "personalization_input", ("id",)
)


def upgrade() -> None:
    migrate_to_ciphertext(REQUEST_INPUT, was_jsonb=True)
    migrate_to_ciphertext(SUBTOPIC_INPUT, was_jsonb=True)


def downgrade() -> None:
    migrate_to_plaintext(SUBTOPIC_INPUT, postgresql.JSONB(), was_jsonb=True)
    migrate_to_plaintext(REQUEST_INPUT, postgresql.JSONB(), was_jsonb=True, not_null_default="{}")
