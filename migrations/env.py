"""Alembic environment: runs on a connection handed over by blobstore, or opens one itself."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from blobstore.core.config import Settings
from blobstore.db.engine import Database
from blobstore.db.models import Base

target_metadata = Base.metadata


def run_on(connection: Connection) -> None:
    """Migrate inside one transaction; PostgreSQL takes an advisory lock so processes migrate one at a time."""
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(7210514)"))
        context.run_migrations()


async def run_standalone() -> None:
    database = Database(Settings.from_env().database_url)
    try:
        async with database.engine.connect() as conn:
            await conn.run_sync(run_on)
            await conn.commit()
    finally:
        await database.dispose()


shared = context.config.attributes.get("connection")
if shared is not None:
    run_on(shared)
elif context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported")
else:
    asyncio.run(run_standalone())
