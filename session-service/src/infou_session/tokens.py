"""Session access tokens: a random secret shown once, stored as an HMAC of it.

A token is `st_` + 32 random bytes (URL-safe base64), or for a create with an
Idempotency-Key 32 bytes of HMAC(secret, client, key), so that a replay returns it again.
Only HMAC-SHA256(secret, token) is stored (INFOU_SESSION_TOKEN_SECRET keys it), so a leaked
table gives no usable token, and comparisons are constant-time. Logs mask anything that
looks like `st_…`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

TOKEN_PREFIX = "st_"  # noqa: S105 - a prefix, not a secret
MAX_TOKEN_LENGTH = 200


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def replayable_token(secret: str, client_id: str, idempotency_key: str) -> str:
    """The token of a session created with an Idempotency-Key: derived from the secret, the
    client and the key (never stored), so a replay can hand the same token out again."""
    digest = hmac.new(
        secret.encode(), f"token\x00{client_id}\x00{idempotency_key}".encode(), hashlib.sha256
    ).digest()
    return TOKEN_PREFIX + base64.urlsafe_b64encode(digest).decode().rstrip("=")


def token_hash(secret: str, token: str) -> str:
    """Hex HMAC-SHA256 of the token under the deployment's secret."""
    return hmac.new(secret.encode(), token.encode(), hashlib.sha256).hexdigest()


def matches(secret: str, token: str, stored_hash: str) -> bool:
    """Whether `token` is the one whose hash is stored (constant-time)."""
    return hmac.compare_digest(token_hash(secret, token), stored_hash)


def well_formed(token: str) -> bool:
    return token.startswith(TOKEN_PREFIX) and 8 < len(token) <= MAX_TOKEN_LENGTH
