"""Personal data at rest: the keyring, the typed columns, the data migrations and rotation."""

import asyncio
import base64
import json

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from infou_libs import crypto
from infou_libs.crypto import Keyring, KeyringError, key_id_of
from infou_libs.db import asyncpg_url
from infou_libs.encrypted_columns import encrypted_columns, rotate
from infou_libs.migrations import downgrade, upgrade

OLD = f"k1:{crypto.generate_key()}"
NEW = f"k2:{crypto.generate_key()}"


def test_newest_key_encrypts_and_every_key_decrypts() -> None:
    old = Keyring.parse(OLD)
    both = Keyring.parse(f"{OLD},{NEW}")
    token = old.encrypt("목표: 파이썬".encode())
    assert "파이썬" not in token
    assert key_id_of(token) == "k1"
    assert both.decrypt(token).decode() == "목표: 파이썬"
    rewrapped = both.rewrap(token)
    assert key_id_of(rewrapped) == "k2"
    assert both.decrypt(rewrapped).decode() == "목표: 파이썬"
    with pytest.raises(KeyringError, match="k2"):
        old.decrypt(rewrapped)


def test_each_value_has_its_own_data_key() -> None:
    ring = Keyring.parse(OLD)
    assert ring.encrypt(b"same") != ring.encrypt(b"same")


def test_tampered_ciphertext_is_refused() -> None:
    ring = Keyring.parse(OLD)
    token = ring.encrypt(b"secret")
    raw = bytearray(base64.urlsafe_b64decode(token.split(".", 2)[2]))
    raw[-1] ^= 1
    forged = f"enc1.k1.{base64.urlsafe_b64encode(bytes(raw)).decode()}"
    with pytest.raises(KeyringError):
        ring.decrypt(forged)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "no key"),
        ("k1", "id:base64key"),
        ("k1:not-base64!", "not base64"),
        (f"k1:{base64.b64encode(b'short').decode()}", "32 bytes"),
        (f"{OLD},{OLD}", "twice"),
    ],
)
def test_malformed_keyrings_are_refused(spec: str, message: str) -> None:
    with pytest.raises(KeyringError, match=message):
        Keyring.parse(spec)


def test_blind_index_is_stable_across_rotation() -> None:
    assert Keyring.parse(OLD).blind_index("1.2.3.4") == Keyring.parse(f"{OLD},{NEW}").blind_index(
        "1.2.3.4"
    )
    assert Keyring.parse(OLD).blind_index("1.2.3.4") != Keyring.parse(NEW).blind_index("1.2.3.4")


async def _fetch(url: str, sql: str) -> list[tuple[object, ...]]:
    engine = create_async_engine(asyncpg_url(url))
    try:
        async with engine.begin() as conn:
            result = await conn.execute(text(sql))
            return [tuple(r) for r in result] if result.returns_rows else []
    finally:
        await engine.dispose()


async def test_migration_encrypts_existing_rows_and_downgrade_restores_them(
    fresh_database_url: str,
) -> None:
    """Rows written before the encryption revision become ciphertext, and come back on downgrade."""
    from infou_feedback.main import SPEC

    step = asyncio.to_thread
    await step(upgrade, SPEC.migrations_dir, fresh_database_url, SPEC.schema, "3f0c7b2a9d41")
    await _fetch(
        fresh_database_url,
        "INSERT INTO feedback.article_feedback (article_id, session_id, rating, comments) "
        "VALUES ('a1', 's1', 'good', 'PLANTED-comment')",
    )
    await step(upgrade, SPEC.migrations_dir, fresh_database_url, SPEC.schema, "head")
    [(stored,)] = await _fetch(fresh_database_url, "SELECT comments FROM feedback.article_feedback")
    assert isinstance(stored, str)
    assert stored.startswith("enc1.")
    assert "PLANTED" not in stored
    assert crypto.keyring().decrypt(stored) == b"PLANTED-comment"

    await step(downgrade, SPEC.migrations_dir, fresh_database_url, SPEC.schema, "3f0c7b2a9d41")
    [(plain,)] = await _fetch(fresh_database_url, "SELECT comments FROM feedback.article_feedback")
    assert plain == "PLANTED-comment"


async def test_rotation_rewraps_every_value_under_the_newest_key(fresh_database_url: str) -> None:
    from infou_realtime.main import SPEC
    from infou_realtime.models import Base

    await asyncio.to_thread(upgrade, SPEC.migrations_dir, fresh_database_url, SPEC.schema)
    old = Keyring.parse(OLD)
    token = old.encrypt(b"203.0.113.7")
    await _fetch(
        fresh_database_url,
        "INSERT INTO realtime.websocket_connections (connection_id, session_id, client_ip, "
        f"is_active) VALUES ('c1', 's1', '{token}', true)",
    )
    assert {c.column for c in encrypted_columns(Base.metadata)} == {"client_ip", "user_agent"}
    engine = create_async_engine(asyncpg_url(fresh_database_url))
    both = Keyring.parse(f"{OLD},{NEW}")
    try:
        assert await rotate(engine, Base.metadata, both) == 1
        assert await rotate(engine, Base.metadata, both) == 0  # idempotent
    finally:
        await engine.dispose()
    [(stored,)] = await _fetch(
        fresh_database_url, "SELECT client_ip FROM realtime.websocket_connections"
    )
    assert isinstance(stored, str)
    assert key_id_of(stored) == "k2"
    assert Keyring.parse(NEW).decrypt(stored) == b"203.0.113.7"


def test_rotate_keys_command(
    fresh_database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`python -m infou_realtime rotate-keys` re-wraps the stored values under the newest key."""
    from infou_libs.runtime import main
    from infou_realtime.main import SPEC
    from infou_realtime.settings import RealtimeSettings

    upgrade(SPEC.migrations_dir, fresh_database_url, SPEC.schema)
    token = Keyring.parse(OLD).encrypt(b"198.51.100.4")
    asyncio.run(
        _fetch(
            fresh_database_url,
            "INSERT INTO realtime.websocket_connections (connection_id, session_id, client_ip, "
            f"is_active) VALUES ('c9', 's9', '{token}', true)",
        )
    )
    monkeypatch.setenv("INFOU_DATABASE_URL", fresh_database_url)
    monkeypatch.setenv("INFOU_DATA_KEYS", f"{OLD},{NEW}")
    try:
        main(SPEC, RealtimeSettings, ["rotate-keys"])
    finally:
        crypto._active = None  # the command configured this process's keyring
    assert "realtime: 1 values re-encrypted under key 'k2'" in capsys.readouterr().out
    [(stored,)] = asyncio.run(
        _fetch(fresh_database_url, "SELECT client_ip FROM realtime.websocket_connections")
    )
    assert isinstance(stored, str)
    assert key_id_of(stored) == "k2"


async def _insert(url: str, table: str, values: dict[str, str]) -> None:
    """A row with `values` (SQL literals) and a filler for every other NOT NULL column."""
    filler = {"integer": "0", "bigint": "0", "numeric": "0", "boolean": "false", "jsonb": "'{}'"}
    filler |= {"ARRAY": "'{}'", "timestamp with time zone": "now()"}
    schema, name = table.split(".")
    required = await _fetch(
        url,
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = "
        f"'{schema}' AND table_name = '{name}' AND is_nullable = 'NO' AND column_default IS NULL",
    )
    row = {str(c): filler.get(str(t), "'x'") for c, t in required} | values
    columns, literals = ", ".join(row), ", ".join(row.values())
    await _fetch(url, f"INSERT INTO {table} ({columns}) VALUES ({literals})")


async def test_session_article_text_becomes_ciphertext_found_by_rotation(
    fresh_database_url: str,
) -> None:
    """Articles and level variants written before the revision: text and body encrypted in
    place, covered by key rotation, and back as plain text and JSONB on downgrade."""
    from infou_session.main import SPEC
    from infou_session.models import Base

    url = fresh_database_url
    step = asyncio.to_thread
    await step(upgrade, SPEC.migrations_dir, url, SPEC.schema, "a4c7e2d9b613")
    body = '{"title": "t", "personal_adaptation": {"text": "PLANTED-goal"}}'
    await _insert(url, "session.learning_sessions", {"id": "'s1'"})
    await _insert(
        url,
        "session.generated_articles",
        {"id": "'a1'", "session_id": "'s1'", "content": "'## PLANTED-goal'", "body": f"'{body}'"},
    )
    await _insert(
        url,
        "session.article_variants",
        {"article_id": "'a1'", "content": "'PLANTED-goal too'", "body": f"'{body}'"},
    )
    await step(upgrade, SPEC.migrations_dir, url, SPEC.schema, "head")
    stored = await _fetch(
        url,
        "SELECT content, body FROM session.generated_articles "
        "UNION ALL SELECT content, body FROM session.article_variants",
    )
    assert len(stored) == 2
    for content, article in stored:
        assert isinstance(content, str)
        assert isinstance(article, str)
        assert content.startswith("enc1.")
        assert article.startswith("enc1.")
        assert "PLANTED" not in content + article
        assert b"PLANTED-goal" in crypto.keyring().decrypt(content)
        assert json.loads(crypto.keyring().decrypt(article))["personal_adaptation"] == {
            "text": "PLANTED-goal"
        }

    # `rotate-keys` finds the four columns by their types.
    columns = {(c.table, c.column) for c in encrypted_columns(Base.metadata)}
    for table in ("generated_articles", "article_variants"):
        assert {(table, "content"), (table, "body")} <= columns

    await step(downgrade, SPEC.migrations_dir, url, SPEC.schema, "a4c7e2d9b613")
    [(content, article)] = await _fetch(
        url, "SELECT content, body ->> 'title' FROM session.generated_articles"
    )
    assert (content, article) == ("## PLANTED-goal", "t")
