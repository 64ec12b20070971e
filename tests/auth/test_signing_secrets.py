"""Signing keys are sealed with a secret kept outside the database: a copy of the database cannot sign.

The secret is BLOBSTORE_SECRET_KEY, the same on every server of a store; an
embedded (SQLite) store without it keeps a random key file, 0600, in its home.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import os
import stat
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import Connection

from blobstore import BlobStore, Settings
from blobstore.auth import signing
from blobstore.db import migrate
from blobstore.db.engine import Database
from blobstore.db.models import Base
from blobstore.errors import ConfigurationError, Forbidden
from tests.support.stores import FakeClock, StoreFactory

SECRET = "a-test-secret-of-at-least-32-characters-0123456789"


def candidate_keys(value: object) -> Iterator[bytes]:
    """Every way a forger might turn a stored value into an HMAC key."""
    if isinstance(value, bytes):
        yield value
    if not isinstance(value, str):
        return
    yield value.encode()
    with contextlib.suppress(ValueError):
        yield bytes.fromhex(value)
    for decode in (base64.urlsafe_b64decode, base64.b64decode):
        with contextlib.suppress(ValueError, binascii.Error):
            yield decode(value + "=" * (-len(value) % 4))


async def every_row(store: BlobStore) -> list[dict[str, Any]]:
    async def read(conn: Any) -> list[dict[str, Any]]:
        rows = []
        for table in Base.metadata.sorted_tables:
            rows += [dict(row._mapping) for row in await conn.execute(select(table))]
        return rows

    return await store.database.read(read)


async def test_a_forger_with_every_row_of_the_database_cannot_sign(store: BlobStore) -> None:
    """Every value of every row, used as an HMAC key under every key id, makes no URL that verifies."""
    genuine = await signing.sign(store.core, "http://x", "acme", "GET", "k", expires_in=3600)
    expires = int(genuine.expires_at.timestamp())
    rows = await every_row(store)
    key_ids = {row["id"] for row in rows if isinstance(row.get("id"), str) and len(row["id"]) == 16}
    tried = 0
    for key_id in key_ids:
        message = signing.Grant("GET", "acme", "k", expires, key_id).message()
        for row in rows:
            for value in row.values():
                for candidate in candidate_keys(value):
                    mac = hmac.new(candidate, message, hashlib.sha256).digest()
                    signature = base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
                    query = {"expires": str(expires), "key_id": key_id, "signature": signature}
                    tried += 1
                    with pytest.raises(Forbidden):
                        await signing.verify(store.core, "GET", "acme", "k", query, {})
    assert tried > 0


@pytest.mark.postgres
async def test_a_server_database_without_the_secret_cannot_sign(open_store: StoreFactory) -> None:
    """PostgreSQL and no BLOBSTORE_SECRET_KEY: one ConfigurationError naming it, no key created."""
    store = await open_store("postgres-s3", secret_key=None)
    with pytest.raises(ConfigurationError, match="BLOBSTORE_SECRET_KEY"):
        await signing.sign(store.core, "http://x", "acme", "GET", "k")
    assert await signing.list_keys(store.core) == []


@pytest.mark.postgres
async def test_servers_with_different_secrets_refuse_loudly(open_store: StoreFactory) -> None:
    """A server whose secret is not the one that sealed the key says so (ConfigurationError), never a
    silent key of its own: URLs would otherwise work on one server and not another."""
    signer = await open_store("postgres-s3")
    other = await open_store("postgres-s3", secret_key="another-secret-" + "x" * 32)
    signed = await signing.sign(signer, "http://x", "acme", "GET", "k")
    query = dict(part.split("=", 1) for part in signed.url.split("?", 1)[1].split("&"))
    with pytest.raises(ConfigurationError, match="BLOBSTORE_SECRET_KEY"):
        await signing.verify(other, "GET", "acme", "k", query, {})
    await signing.verify(await open_store("postgres-s3"), "GET", "acme", "k", query, {})


async def test_an_embedded_store_keeps_a_private_key_file_in_its_home(tmp_path: Path, clock: FakeClock) -> None:
    """SQLite without the secret: the first signature creates BLOBSTORE_HOME/secret.key (0600, whatever the
    umask); a second store of that home (another process) verifies the URL; the secret is not in the database."""
    settings = Settings.from_env({"BLOBSTORE_HOME": str(tmp_path / "home")})
    key_file = tmp_path / "home" / "secret.key"
    previous = os.umask(0o022)
    try:
        async with await BlobStore.open(settings, clock=clock) as first:
            assert not key_file.exists()
            signed = await signing.sign(first, "http://x", "acme", "GET", "k")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    query = dict(part.split("=", 1) for part in signed.url.split("?", 1)[1].split("&"))
    async with await BlobStore.open(settings, clock=clock) as second:
        await signing.verify(second, "GET", "acme", "k", query, {})
        assert key_file.read_text().strip() not in str(await every_row(second))
    async with await BlobStore.open(replace(settings, secret_key=SECRET), clock=clock) as configured:
        with pytest.raises(ConfigurationError, match="BLOBSTORE_SECRET_KEY"):
            await signing.verify(configured, "GET", "acme", "k", query, {})


def test_the_secret_comes_from_the_environment_and_is_never_shown() -> None:
    """BLOBSTORE_SECRET_KEY is read, kept out of repr, and refused when shorter than 32 characters."""
    settings = Settings.from_env({"BLOBSTORE_SECRET_KEY": SECRET})
    assert settings.secret_key == SECRET
    assert SECRET not in repr(settings)
    with pytest.raises(ConfigurationError, match="BLOBSTORE_SECRET_KEY"):
        Settings.from_env({"BLOBSTORE_SECRET_KEY": "short"})


# --- the migration --------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'migrations.db'}"
    return str(request.getfixturevalue("empty_postgres_url"))


async def test_the_migration_deletes_clear_text_signing_keys(database_url: str) -> None:
    """Keys stored in clear before the upgrade are gone after it (the URLs they signed stop working), and the
    migration steps down and up again."""
    from alembic import command

    def alembic(direction: str, revision: str) -> Any:
        def run(connection: Connection) -> None:
            config = migrate.alembic_config()
            config.attributes["connection"] = connection
            getattr(command, direction)(config, revision)

        return run

    def insert_clear_text_key(connection: Connection) -> None:
        connection.execute(
            text("INSERT INTO signing_keys (id, secret, created_at) VALUES (:id, :secret, CURRENT_TIMESTAMP)"),
            {"id": "0123456789abcdef", "secret": "ab" * 32},
        )

    def count(connection: Connection) -> int:
        return int(connection.execute(text("SELECT count(*) FROM signing_keys")).scalar_one())

    database = Database(database_url)
    try:
        for action in (alembic("upgrade", "0006"), insert_clear_text_key, alembic("upgrade", "head")):
            async with database.engine.begin() as conn:
                await conn.run_sync(action)
        async with database.engine.begin() as conn:
            assert await conn.run_sync(count) == 0
            await conn.run_sync(alembic("downgrade", "0006"))
            await conn.run_sync(alembic("upgrade", "head"))
    finally:
        await database.dispose()
