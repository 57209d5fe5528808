"""article text encrypted at rest: content and body of articles and level variants

The article's personal section (generation-service personal_adaptation) can show the learner's
goals and interests back, so the written text is personal data: ciphertext like the session's
personalisation (infou_libs.crypto), existing rows encrypted in place.

Revision ID: b7d1f4e8a2c6
Revises: a4c7e2d9b613
Create Date: 2026-12-03 15:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from infou_libs.encrypted_columns import (
    EncryptedColumn,
    migrate_to_ciphertext,
    migrate_to_plaintext,
)

revision: str = "b7d1f4e8a2c6"
down_revision: str | None = "a4c7e2d9b613"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CONTENT = [
    EncryptedColumn("session", "generated_articles", "content", ("id",)),
    EncryptedColumn("session", "article_variants", "content", ("id",)),
]
BODY = [
    EncryptedColumn("session", "generated_articles", "body", ("id",)),
    EncryptedColumn("session", "article_variants", "body", ("id",)),
]


def upgrade() -> None:
    for col in CONTENT:
        migrate_to_ciphertext(col)
    for col in BODY:
        migrate_to_ciphertext(col, was_jsonb=True)


def downgrade() -> None:
    for col in CONTENT:
        migrate_to_plaintext(col, sa.Text())
    for col in BODY:
        migrate_to_plaintext(col, postgresql.JSONB(), was_jsonb=True)
