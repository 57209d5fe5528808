"""feedback comments and referrer URLs encrypted at rest (infou_libs.crypto)

Revision ID: 139f484a7583
Revises: 3f0c7b2a9d41
Create Date: 2026-12-03 07:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa

from infou_libs.encrypted_columns import (
    EncryptedColumn,
    migrate_to_ciphertext,
    migrate_to_plaintext,
)

revision: str = "139f484a7583"
down_revision: str | None = "3f0c7b2a9d41"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COMMENTS = EncryptedColumn("feedback", "article_feedback", "comments", ("id",))
REFERRER = EncryptedColumn(
    "feedback", "learning_progress_logs", "referrer_url", ("id", "timestamp")
)


def upgrade() -> None:
    migrate_to_ciphertext(COMMENTS)
    migrate_to_ciphertext(REFERRER)


def downgrade() -> None:
    migrate_to_plaintext(REFERRER, sa.Text())
    migrate_to_plaintext(COMMENTS, sa.Text())
