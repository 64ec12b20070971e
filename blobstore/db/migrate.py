"""Run Alembic migrations from the installed package (no alembic.ini needed)."""

from __future__ import annotations

import asyncio
import threading
from importlib.resources import files

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from blobstore.db.engine import Database


def alembic_config() -> Config:
    """An Alembic config pointing at the migrations shipped as ``blobstore._migrations``."""
    config = Config()
    config.set_main_option("script_location", str(files("blobstore._migrations")))
    return config


#: Alembic keeps its running environment in module globals: one migration at a time per process.
_ALEMBIC = threading.Lock()


async def upgrade(database: Database) -> None:
    """Bring the schema to the newest revision; safe to run from several processes, and from several
    tasks or threads of one process, at once."""
    while not _ALEMBIC.acquire(blocking=False):  # noqa: ASYNC110 - a thread lock shared by every event loop
        await asyncio.sleep(0.01)
    try:
        await _upgrade(database)
    finally:
        _ALEMBIC.release()


async def _upgrade(database: Database) -> None:
    config = alembic_config()

    def _upgrade(connection: Connection) -> None:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")

    async with database.engine.connect() as conn:
        await conn.run_sync(_upgrade)
        await conn.commit()


async def is_current(database: Database) -> bool:
    """True if the database schema is at the newest revision."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()

    def _current(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with database.engine.connect() as conn:
        return await conn.run_sync(_current) == head
