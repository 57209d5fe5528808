"""Personal data at rest: AES-256-GCM envelope encryption under a rotating keyring.

Every value gets its own random data key; the data key is wrapped by a key-encryption key
(KEK) from `INFOU_DATA_KEYS`, a keyring of `id:base64key` pairs. The last key listed encrypts
new values, every listed key decrypts, so a key rotates by appending a new one, running
`infou rotate-keys` (which re-wraps every stored value under it), then dropping the old one.

A stored value is text: `enc1.<key id>.<base64url(wrapped data key | nonce | ciphertext)>`.
Columns are typed (`EncryptedText`, `EncryptedJSON`) so no call site sees ciphertext.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import LargeBinary, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

PREFIX = "enc1"
_NONCE = 12
_KEY = 32
_WRAPPED = _NONCE + _KEY + 16  # nonce, data key, GCM tag
_KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")

# Development and tests only: production refuses to start without INFOU_DATA_KEYS. Fixed, so a
# development database written by one run of `make run` stays readable by the next.
DEV_DATA_KEYS = "dev:" + base64.b64encode(hashlib.sha256(b"infou-dev-data-key").digest()).decode()


class KeyringError(ValueError):
    """INFOU_DATA_KEYS is malformed, or a stored value names a key the keyring lacks."""


@dataclass(frozen=True)
class Keyring:
    """Key-encryption keys by id; `current` encrypts, every key decrypts."""

    keys: dict[str, bytes]
    current: str

    @classmethod
    def parse(cls, spec: str) -> Keyring:
        """Reads `id:base64key[,id:base64key…]`; the last entry is the current key."""
        keys: dict[str, bytes] = {}
        current = ""
        for raw in spec.replace("\n", ",").split(","):
            entry = raw.strip()
            if not entry:
                continue
            key_id, sep, encoded = entry.partition(":")
            if not sep or not _KEY_ID.match(key_id):
                raise KeyringError(
                    "INFOU_DATA_KEYS entries are id:base64key (id: letters, digits, _ or -)"
                )
            try:
                key = base64.b64decode(encoded.strip(), validate=True)
            except ValueError as exc:
                raise KeyringError(f"INFOU_DATA_KEYS key {key_id!r} is not base64") from exc
            if len(key) != _KEY:
                raise KeyringError(f"INFOU_DATA_KEYS key {key_id!r} must be 32 bytes (AES-256)")
            if key_id in keys:
                raise KeyringError(f"INFOU_DATA_KEYS lists key {key_id!r} twice")
            keys[key_id] = key
            current = key_id
        if not keys:
            raise KeyringError("INFOU_DATA_KEYS holds no key")
        return cls(keys, current)

    def encrypt(self, plaintext: bytes) -> str:
        """Encrypts under a fresh data key wrapped by the current key."""
        data_key = AESGCM.generate_key(bit_length=256)
        return self._seal(data_key, plaintext)

    def decrypt(self, token: str) -> bytes:
        key_id, data_key, nonce, ciphertext = self._open(token)
        try:
            return AESGCM(data_key).decrypt(nonce, ciphertext, key_id.encode())
        except InvalidTag as exc:
            raise KeyringError("a stored value failed authentication") from exc

    def rewrap(self, token: str) -> str:
        """The same value with its data key wrapped by the current key (no-op when it is)."""
        if key_id_of(token) == self.current:
            return token
        return self.encrypt(self.decrypt(token))

    def blind_index(self, value: str) -> str:
        """A keyed hash (HMAC-SHA256) for equality lookups on an encrypted column.

        Keyed by the first key listed, so it stays stable while newer keys are added.
        """
        first = next(iter(self.keys.values()))
        index_key = hmac.new(first, b"infou-blind-index", hashlib.sha256).digest()
        return hmac.new(index_key, value.encode(), hashlib.sha256).hexdigest()

    def _seal(self, data_key: bytes, plaintext: bytes) -> str:
        kek = self.keys[self.current]
        aad = self.current.encode()
        wrap_nonce, nonce = os.urandom(_NONCE), os.urandom(_NONCE)
        wrapped = wrap_nonce + AESGCM(kek).encrypt(wrap_nonce, data_key, aad)
        sealed = wrapped + nonce + AESGCM(data_key).encrypt(nonce, plaintext, aad)
        return f"{PREFIX}.{self.current}.{base64.urlsafe_b64encode(sealed).decode()}"

    def _open(self, token: str) -> tuple[str, bytes, bytes, bytes]:
        key_id = key_id_of(token)
        kek = self.keys.get(key_id)
        if kek is None:
            raise KeyringError(f"a stored value needs data key {key_id!r}, not in INFOU_DATA_KEYS")
        try:
            sealed = base64.urlsafe_b64decode(token.split(".", 2)[2])
        except ValueError as exc:
            raise KeyringError("a stored value is not valid ciphertext") from exc
        wrapped, rest = sealed[:_WRAPPED], sealed[_WRAPPED:]
        try:
            data_key = AESGCM(kek).decrypt(wrapped[:_NONCE], wrapped[_NONCE:], key_id.encode())
        except InvalidTag as exc:
            raise KeyringError(f"data key {key_id!r} does not open a stored value") from exc
        return key_id, data_key, rest[:_NONCE], rest[_NONCE:]


def is_encrypted(value: str) -> bool:
    return value.startswith(PREFIX + ".") and value.count(".") >= 2


def key_id_of(token: str) -> str:
    if not is_encrypted(token):
        raise KeyringError("not an encrypted value")
    return token.split(".", 2)[1]


def generate_key() -> str:
    """A new base64 key-encryption key (for `INFOU_DATA_KEYS`)."""
    return base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()


_active: Keyring | None = None


def configure(spec: str) -> Keyring:
    """Sets the process's keyring (a service does this at start-up from its settings)."""
    global _active
    _active = Keyring.parse(spec or DEV_DATA_KEYS)
    return _active


def keyring() -> Keyring:
    """The process's keyring: the configured one, else INFOU_DATA_KEYS, else the dev key."""
    return _active or _from_environment()


@lru_cache(maxsize=1)
def _from_environment() -> Keyring:
    # Migrations and one-off commands run without a service's settings object.
    return Keyring.parse(os.environ.get("INFOU_DATA_KEYS", "").strip() or DEV_DATA_KEYS)


class EncryptedText(TypeDecorator[str]):
    """A text column stored as ciphertext; reads and writes plain str."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:  # noqa: ARG002
        if value is None:
            return None
        return keyring().encrypt(value.encode())

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:  # noqa: ARG002
        if value is None:
            return None
        return keyring().decrypt(value).decode()


class EncryptedJSON(TypeDecorator[Any]):
    """A JSON value (dict, list, …) stored as ciphertext."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:  # noqa: ARG002
        if value is None:
            return None
        plain = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
        return keyring().encrypt(plain.encode())

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:  # noqa: ARG002
        if value is None:
            return None
        return json.loads(keyring().decrypt(value))


class EncryptedBytes(TypeDecorator[bytes]):
    """Binary data (an event payload) stored as ciphertext.

    A value written before the column was encrypted reads back as it is: outbox rows are
    short-lived, so they need no data migration.
    """

    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value: bytes | None, dialect: Dialect) -> bytes | None:  # noqa: ARG002
        if value is None:
            return None
        return keyring().encrypt(bytes(value)).encode()

    def process_result_value(self, value: bytes | None, dialect: Dialect) -> bytes | None:  # noqa: ARG002
        if value is None:
            return None
        raw = bytes(value)
        if raw.startswith(PREFIX.encode() + b"."):
            return keyring().decrypt(raw.decode())
        return raw
