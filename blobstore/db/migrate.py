"""Run Alembic migrations from the installed package (no alembic.ini needed).

Opening a store checks the schema's revision with two small queries against
:func:`head`; Alembic itself loads only when there is something to migrate.
"""

from __future__ import annotations

import asyncio
import functools
import re
import threading
from importlib.resources import files
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncConnection

from blobstore.db.engine import Database

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Connection

#: ``revision = "..."`` and ``down_revision = "..."`` lines of a migration file.
_REVISION = re.compile(r'^(down_revision|revision)\s*(?::[^=]*)?=\s*["\']([^"\']+)["\']', re.MULTILINE)


@functools.cache
def head() -> str:
    """The newest revision of the shipped migrations, read from their files without importing Alembic
    (a test holds it to Alembic's own answer)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in files("blobstore._migrations").joinpath("versions").iterdir():
        if path.name.endswith(".py") and not path.name.startswith("_"):
            found = dict(_REVISION.findall(path.read_text(encoding="utf-8")))
            revisions.add(found["revision"])
            parents.update(found.get("down_revision", "").split(","))
    (newest,) = revisions - parents
    return newest


def alembic_config() -> Config:
    """An Alembic config pointing at the migrations shipped as ``blobstore._migrations``."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(files("blobstore._migrations")))
    return config


#: Alembic keeps its running environment in module globals: one migration at a time per process.
_ALEMBIC = threading.Lock()


async def upgrade(database: Database) -> None:
    """Bring the schema to the newest revision; safe to run from several processes, and from several
    tasks or threads of one process, at once. A schema already at :func:`head` costs one query."""
    if await is_current(database):
        return
    while not _ALEMBIC.acquire(blocking=False):  # noqa: ASYNC110 - a thread lock shared by every event loop
        await asyncio.sleep(0.01)
    try:
        await _upgrade(database)
    finally:
        _ALEMBIC.release()


async def _upgrade(database: Database) -> None:
    from alembic import command

    config = alembic_config()

    def _upgrade(connection: Connection) -> None:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")

    async with database.engine.connect() as conn:
        await conn.run_sync(_upgrade)
        await conn.commit()


async def is_current(database: Database) -> bool:
    """True if the database schema is at the newest revision."""
    return await current_revision(database) == head()


async def current_revision(database: Database) -> str | None:
    """The schema's revision, or None for a database Alembic never touched (no ``alembic_version`` table).

    Runs through the retrying reader, so a dropped connection while a store opens is replayed, and an
    outage is StorageUnavailable like everywhere else.
    """
    return await database.read(_revision)


async def _revision(conn: AsyncConnection) -> str | None:
    if not await conn.run_sync(lambda sync: inspect(sync).has_table("alembic_version")):
        return None
    return (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
