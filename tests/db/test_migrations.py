"""Alembic migrations: up, down and up again on SQLite and PostgreSQL; the result matches the models;
the migrations ship inside the package as ``blobstore._migrations``."""

from __future__ import annotations

import asyncio
import importlib
import sys
import tomllib
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from blobstore import BlobStore, Settings
from blobstore.db import migrate
from blobstore.db.engine import Database
from blobstore.db.models import Base

ROOT = Path(__file__).resolve().parents[2]
TABLES = {table.name for table in Base.metadata.sorted_tables}


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite file of this test's own."""
    return f"sqlite+aiosqlite:///{tmp_path / 'migrations.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """An empty database on each engine in turn."""
    name = "sqlite_url" if request.param == "sqlite" else "empty_postgres_url"
    return str(request.getfixturevalue(name))


async def _run(url: str, action: Any) -> Any:
    """Run ``action(sync_connection)`` on a fresh engine, committing afterwards."""
    database = Database(url)
    try:
        async with database.engine.connect() as conn:
            result = await conn.run_sync(action)
            await conn.commit()
            return result
    finally:
        await database.dispose()


def _alembic(direction: str, revision: str) -> Any:
    def run(connection: Connection) -> None:
        config = migrate.alembic_config()
        config.attributes["connection"] = connection
        getattr(command, direction)(config, revision)

    return run


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names()) - {"alembic_version"}


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _model_diffs(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


def _head() -> str:
    head = ScriptDirectory.from_config(migrate.alembic_config()).get_current_head()
    assert head is not None
    return head


async def test_upgrade_downgrade_upgrade_round_trips(database_url: str) -> None:
    """upgrade head creates every table; downgrade base removes them all; upgrade head again recreates them."""
    await _run(database_url, _alembic("upgrade", "head"))
    assert await _run(database_url, _tables) == TABLES
    assert await _run(database_url, _current) == _head()
    await _run(database_url, _alembic("downgrade", "base"))
    assert await _run(database_url, _tables) == set()
    assert await _run(database_url, _current) is None
    await _run(database_url, _alembic("upgrade", "head"))
    assert await _run(database_url, _tables) == TABLES
    assert await _run(database_url, _current) == _head()
    assert await _run(database_url, _model_diffs) == []


async def test_every_revision_steps_down_and_up_one_at_a_time(database_url: str) -> None:
    """Each revision's downgrade undoes its upgrade: stepping down one by one to base and back up works."""
    revisions = [script.revision for script in ScriptDirectory.from_config(migrate.alembic_config()).walk_revisions()]
    await _run(database_url, _alembic("upgrade", "head"))
    for expected in [*revisions[1:], None]:
        await _run(database_url, _alembic("downgrade", "-1"))
        assert await _run(database_url, _current) == expected
    for expected in reversed(revisions):
        await _run(database_url, _alembic("upgrade", "+1"))
        assert await _run(database_url, _current) == expected
    assert await _run(database_url, _model_diffs) == []


async def test_the_migrated_schema_matches_the_models(database_url: str) -> None:
    """After upgrade head, Alembic's autogenerate comparison finds no difference from the models."""
    await _run(database_url, _alembic("upgrade", "head"))
    assert await _run(database_url, _model_diffs) == []


async def test_upgrade_is_idempotent_and_is_current_sees_it(database_url: str) -> None:
    """migrate.upgrade twice is harmless; is_current is False before and True after."""
    database = Database(database_url)
    try:
        assert not await migrate.is_current(database)
        await migrate.upgrade(database)
        await migrate.upgrade(database)
        assert await migrate.is_current(database)
    finally:
        await database.dispose()


_UPGRADE = """
import asyncio, sys
from blobstore.db import migrate
from blobstore.db.engine import Database

async def main():
    database = Database(sys.argv[1])
    try:
        await migrate.upgrade(database)
    finally:
        await database.dispose()

asyncio.run(main())
"""


async def test_concurrent_upgrades_from_several_processes_are_safe(empty_postgres_url: str) -> None:
    """Three processes upgrading one empty PostgreSQL database at once all succeed, leaving one correct schema."""
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", _UPGRADE, empty_postgres_url, cwd=ROOT, stderr=asyncio.subprocess.PIPE
        )
        for _ in range(3)
    ]
    for process in processes:
        _, err = await asyncio.wait_for(process.communicate(), 120)
        assert process.returncode == 0, err.decode()
    assert await _run(empty_postgres_url, _current) == _head()
    assert await _run(empty_postgres_url, _model_diffs) == []


async def test_stores_opened_concurrently_in_one_process_each_migrate(tmp_path: Path) -> None:
    """Opening several embedded (self-migrating) stores at once in one event loop migrates each one correctly."""
    settings = [Settings.from_env({"BLOBSTORE_HOME": str(tmp_path / f"home-{n}")}) for n in range(3)]
    stores = await asyncio.wait_for(asyncio.gather(*(BlobStore.open(one) for one in settings)), 60)
    try:
        for n, store in enumerate(stores):
            await store.tenant("acme").put("k", f"store {n}".encode())
            assert await _run(store.settings.database_url, _model_diffs) == []
    finally:
        for store in stores:
            await store.close()


async def test_concurrent_opens_migrate_one_server_database_once(tmp_path: Path, empty_postgres_url: str) -> None:
    """Several stores opened at once with migrate_schema on one empty PostgreSQL database all open and agree."""
    settings = Settings(home=tmp_path, database_url=empty_postgres_url, storage_url=(tmp_path / "blobs").as_uri())
    stores = await asyncio.wait_for(
        asyncio.gather(*(BlobStore.open(settings, migrate_schema=True) for _ in range(3))), 60
    )
    try:
        await stores[0].tenant("acme").put("k", b"shared")
        assert await stores[2].tenant("acme").get("k") == b"shared"
    finally:
        for store in stores:
            await store.close()
    assert await _run(empty_postgres_url, _model_diffs) == []


async def test_data_survives_reopening_a_migrated_store(tmp_path: Path, empty_postgres_url: str) -> None:
    """A store opened on a database migrated by `upgrade` keeps its data across reopen and re-upgrade."""
    settings = Settings(home=tmp_path, database_url=empty_postgres_url, storage_url=(tmp_path / "blobs").as_uri())
    async with await BlobStore.open(settings, migrate_schema=True) as store:
        await store.tenant("acme").put("k", b"kept")
    async with await BlobStore.open(settings, migrate_schema=True) as store:
        assert await store.tenant("acme").get("k") == b"kept"


# --- packaging -------------------------------------------------------------------------------------


def test_migrations_are_the_package_blobstore_migrations() -> None:
    """blobstore._migrations and its versions import as packages and hold env.py, the template and every revision."""
    package = importlib.import_module("blobstore._migrations")
    versions = importlib.import_module("blobstore._migrations.versions")
    assert package.__file__ is not None
    assert versions.__file__ is not None
    root = files("blobstore._migrations")
    assert root.joinpath("env.py").is_file()
    assert root.joinpath("script.py.mako").is_file()
    shipped = sorted(p.name for p in root.joinpath("versions").iterdir() if p.name.endswith(".py"))
    in_checkout = sorted(p.name for p in (ROOT / "migrations" / "versions").glob("*.py"))
    assert shipped == in_checkout
    for name in shipped:
        if name != "__init__.py":
            importlib.import_module(f"blobstore._migrations.versions.{name.removesuffix('.py')}")


def test_the_package_and_the_checkout_see_one_history_with_one_head() -> None:
    """alembic.ini (checkout) and blobstore._migrations (wheel) name the same revisions, in one line, one head."""
    packaged = ScriptDirectory.from_config(migrate.alembic_config())
    checkout = ScriptDirectory.from_config(Config(str(ROOT / "alembic.ini")))
    assert len(packaged.get_heads()) == 1
    assert packaged.get_heads() == checkout.get_heads()
    assert [s.revision for s in packaged.walk_revisions()] == [s.revision for s in checkout.walk_revisions()]
    for script in packaged.walk_revisions():
        assert script.module.downgrade is not None, f"revision {script.revision} cannot be downgraded"


def test_the_wheel_lists_the_migration_packages() -> None:
    """pyproject.toml ships blobstore._migrations, its versions and the script template in the wheel."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert {"blobstore._migrations", "blobstore._migrations.versions"} <= set(config["packages"])
    assert "script.py.mako" in config["package-data"]["blobstore._migrations"]


async def test_the_version_table_is_alembics(sqlite_url: str) -> None:
    """The schema revision is recorded in alembic_version, where `alembic` and `blobstore db upgrade` both look."""
    await _run(sqlite_url, _alembic("upgrade", "head"))

    def version(connection: Connection) -> list[Any]:
        return list(connection.execute(text("SELECT version_num FROM alembic_version")))

    assert await _run(sqlite_url, version) == [(_head(),)]
