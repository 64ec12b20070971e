"""The SQLite database holds the store's catalog and its sealed secrets: only its owner may read it.

Under the usual umask 022 a file SQLite creates would be 0644. The database, its
``-wal`` and ``-shm`` files and the home directory blobstore creates must be
private (0600 and 0700) without blobstore touching the process umask.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from blobstore import BlobStore, Settings
from blobstore.auth import signing


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def umask_022() -> Iterator[None]:
    """The common umask: files others may read unless created otherwise."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


async def test_the_database_its_wal_and_shm_and_the_home_are_private(tmp_path: Path) -> None:
    """A new embedded store: home 0700; blobstore.db, -wal and -shm 0600 while it runs; the umask unchanged."""
    home = tmp_path / "home"
    async with await BlobStore.open(Settings.from_env({"BLOBSTORE_HOME": str(home)})) as store:
        await signing.sign(store.core, "http://x", "acme", "GET", "k")
        database = home / "blobstore.db"
        siblings = [database, Path(f"{database}-wal"), Path(f"{database}-shm")]
        assert {path.name: mode(path) for path in siblings} == {path.name: 0o600 for path in siblings}
        assert mode(home) == 0o700
    assert os.umask(0o022) == 0o022


async def test_an_existing_world_readable_database_becomes_private_on_open(tmp_path: Path) -> None:
    """A database an earlier version left 0644 (with its -wal) is 0600 once a store opens it."""
    home = tmp_path / "home"
    async with await BlobStore.open(Settings.from_env({"BLOBSTORE_HOME": str(home)})) as store:
        first_key = await signing.rotate(store.core)
    database = home / "blobstore.db"
    with sqlite3.connect(database) as keep_wal:  # an open connection keeps the -wal file in place
        keep_wal.execute("PRAGMA journal_mode=WAL")
        keep_wal.execute("CREATE TABLE IF NOT EXISTS scratch (x)")
        for path in (database, Path(f"{database}-wal")):
            path.chmod(0o644)
        async with await BlobStore.open(Settings.from_env({"BLOBSTORE_HOME": str(home)})) as store:
            assert [key.id for key in await signing.list_keys(store.core)] == [first_key.id]
            assert mode(database) == mode(Path(f"{database}-wal")) == 0o600


async def test_a_database_file_elsewhere_is_private_too(tmp_path: Path) -> None:
    """BLOBSTORE_DATABASE_URL naming a SQLite file in a new directory: the file is 0600 as well."""
    database = tmp_path / "catalog" / "store.db"
    environ = {
        "BLOBSTORE_HOME": str(tmp_path / "home"),
        "BLOBSTORE_DATABASE_URL": f"sqlite:///{database}",
    }
    async with await BlobStore.open(Settings.from_env(environ)) as store:
        await signing.rotate(store.core)
        assert mode(database) == mode(Path(f"{database}-wal")) == 0o600
