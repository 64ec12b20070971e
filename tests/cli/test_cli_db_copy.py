"""``blobstore db copy --to URL``: moving a SQLite store's catalog to PostgreSQL (issue 23, item 8).

A real SQLite store with rows in every table is copied by a real ``blobstore`` process into a scratch
PostgreSQL database; the store then opens on PostgreSQL and the same storage and holds the same things.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from blobstore import BlobStore, IntegrityError, Settings, buckets, multipart
from blobstore.auth import access_keys, tokens
from blobstore.db import migrate
from blobstore.db.catalog_copy import copy_catalog
from blobstore.db.engine import Database
from blobstore.db.models import Base
from blobstore.model.s3_facts import S3Facts
from tests.support.cli_helpers import run_process
from tests.support.stores import FakeClock

pytestmark = pytest.mark.postgres

KEYS = {("acme", "photos/a.jpg"): b"a" * 5000, ("acme", "photos/b.jpg"): b"a" * 5000, ("globex", "c"): b"a" * 5000}
KEYS[("globex", "d")] = b"d" * 700


async def _chunks(data: bytes) -> Any:
    yield data


@pytest.fixture
async def sqlite_store(tmp_path: Path, clock: FakeClock) -> dict[str, Any]:
    """A SQLite store at ``tmp_path/home`` with rows in every catalog table; what a copy must carry over."""
    home = tmp_path / "home"
    settings = Settings.from_env({"BLOBSTORE_HOME": str(home)})
    async with await BlobStore.open(settings, clock=clock) as store:
        core = store.core
        await buckets.create(core, "acme", "photos")
        for (tenant, key), data in KEYS.items():
            facts = S3Facts(md5="0" * 32, checksums={"crc32": "AAAAAA=="})
            await store.tenant(tenant).put_with_headers(
                key, data, headers={}, s3_facts=lambda facts=facts: facts, expires_in=10**6
            )
        await store.tenant("globex").put("gone", b"pending gc")
        await store.tenant("globex").delete("gone")  # its blob waits out the grace period
        await store.tenant("acme").get("photos/a.jpg")  # egress
        await store.set_quota("acme", max_bytes=10**9)
        await store.set_lifecycle_rule("acme", "photos/tmp/", expire_after=86400)
        await store.tenant("acme").sign_url("photos/a.jpg")  # creates a signing key
        token = await tokens.create(core, "acme")
        access_key = await access_keys.create(core, "acme")
        upload = await multipart.create(core, "acme", "photos", "big", content_type=None, metadata={})
        await multipart.upload_part(core, "acme", "photos", "big", upload.id, 1, _chunks(b"p" * 1000))
        expected_report = (await store.report()).to_dict()
    database = Database(settings.database_url)
    try:
        rows = await database.read(_row_counts)
    finally:
        await database.dispose()
    assert all(rows.values()), f"every table must hold rows: {rows}"
    return {
        "home": home,
        "settings": settings,
        "token": token.token,
        "access_key": (access_key.info.id, access_key.secret),
        "report": expected_report,
        "rows": rows,
    }


async def _row_counts(conn: Any) -> dict[str, int]:
    return {t.name: await conn.scalar(select(func.count()).select_from(t)) for t in Base.metadata.sorted_tables}


def _copy(home: Path, target: str, *extra: str) -> Any:
    return run_process(["db", "copy", "--to", target, *extra], home=home)


async def test_a_copied_catalog_serves_the_same_store_on_postgresql(
    sqlite_store: dict[str, Any], empty_postgres_url: str, clock: FakeClock
) -> None:
    """After the copy, the store opened on PostgreSQL and the same storage reads every key back, passes fsck,
    accepts the old token and access key, reports the same figures, and takes new puts (ids past the copied)."""
    home, settings = sqlite_store["home"], sqlite_store["settings"]
    done = _copy(home, empty_postgres_url).ok()
    assert f"BLOBSTORE_STORAGE_URL={settings.storage_url}" in done.stdout
    assert "BLOBSTORE_DATABASE_URL=postgresql+asyncpg://" in done.stdout
    assert f"$(cat {home / 'secret.key'})" in done.stdout
    for name, rows in sqlite_store["rows"].items():
        assert re.search(rf"^  {name} +{rows} rows?$", done.stdout, re.MULTILINE), name

    moved = replace(settings, database_url=empty_postgres_url, secret_key=(home / "secret.key").read_text().strip())
    async with await BlobStore.open(moved, clock=clock) as store:
        assert (await store.report()).to_dict() == sqlite_store["report"]  # before reads add egress
        for (tenant, key), data in KEYS.items():
            assert await store.tenant(tenant).get(key) == data
        assert (await store.fsck()).ok
        assert (await tokens.authenticate(store.core, sqlite_store["token"])).tenant == "acme"
        key_id, secret = sqlite_store["access_key"]
        active = await access_keys.active(store.core, key_id)
        assert active is not None
        assert active.secret == secret
        await store.tenant("initech").put("new", b"new bytes")  # a new tenant and blob: sequences moved on
        assert await store.tenant("initech").get("new") == b"new bytes"


async def test_a_target_holding_a_catalog_is_refused_and_left_alone(
    sqlite_store: dict[str, Any], empty_postgres_url: str
) -> None:
    home = sqlite_store["home"]
    _copy(home, empty_postgres_url).ok()
    _copy(home, empty_postgres_url).failed("already holds a catalog", "copy into an empty database")
    database = Database(empty_postgres_url)
    try:
        assert await database.read(_row_counts) == sqlite_store["rows"]
    finally:
        await database.dispose()


def test_json_names_the_settings_to_use(sqlite_store: dict[str, Any], empty_postgres_url: str) -> None:
    result = json.loads(_copy(sqlite_store["home"], empty_postgres_url, "--json").ok().stdout)
    assert result["rows"] == sqlite_store["rows"]
    assert result["settings"]["BLOBSTORE_STORAGE_URL"] == sqlite_store["settings"].storage_url


async def test_a_copy_that_does_not_match_the_source_is_rolled_back(
    sqlite_store: dict[str, Any], empty_postgres_url: str
) -> None:
    """A target that changes rows as they arrive (a trigger) fails the verification; nothing stays behind."""
    source, target = Database(sqlite_store["settings"].database_url), Database(empty_postgres_url)
    try:
        await migrate.upgrade(target)
        async with target.engine.begin() as conn:
            await conn.execute(
                text(
                    "CREATE FUNCTION grow() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN NEW.size := NEW.size + 1; RETURN NEW; END $$"
                )
            )
            await conn.execute(text("CREATE TRIGGER grow BEFORE INSERT ON refs FOR EACH ROW EXECUTE FUNCTION grow()"))
        with pytest.raises(IntegrityError, match=r"does not match the source and was rolled back.*refs"):
            await copy_catalog(source, target, batch_rows=2)
        assert not any((await target.read(_row_counts)).values())
    finally:
        await source.dispose()
        await target.dispose()


async def test_small_batches_copy_every_row(sqlite_store: dict[str, Any], empty_postgres_url: str) -> None:
    """Batches of two rows (keyset pages over composite keys) still copy every row once."""
    source, target = Database(sqlite_store["settings"].database_url), Database(empty_postgres_url)
    try:
        copied = await copy_catalog(source, target, batch_rows=2)
        assert copied.rows == sqlite_store["rows"] == await target.read(_row_counts)
    finally:
        await source.dispose()
        await target.dispose()


def test_no_store_to_copy_is_one_line_and_creates_nothing(tmp_path: Path, empty_postgres_url: str) -> None:
    home = tmp_path / "nowhere"
    _copy(home, empty_postgres_url).failed("no store at", "does not exist")
    assert not home.exists()


def test_a_bad_target_url_names_the_option(tmp_path: Path) -> None:
    _copy(tmp_path / "home", "mysql://x/y").failed("--to: unsupported database URL")
