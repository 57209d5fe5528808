"""connection IP and user agent encrypted at rest (infou_libs.crypto)

Revision ID: c14e64f5ed86
Revises: bbf38d5e50a1
Create Date: 2026-12-03 07:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa

from infou_libs.encrypted_columns import (
    EncryptedColumn,
    migrate_to_ciphertext,
    migrate_to_plaintext,
)

revision: str = "c14e64f5ed86"
down_revision: str | None = "bbf38d5e50a1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CLIENT_IP = EncryptedColumn("realtime", "websocket_connections", "client_ip", ("id",))
USER_AGENT = EncryptedColumn("realtime", "websocket_connections", "user_agent", ("id",))


def upgrade() -> None:
    migrate_to_ciphertext(CLIENT_IP)
    migrate_to_ciphertext(USER_AGENT)


def downgrade() -> None:
    migrate_to_plaintext(USER_AGENT, sa.Text())
    migrate_to_plaintext(CLIENT_IP, sa.String(length=64))
