"""The PostgreSQL server the tests use: one named by the environment, a container, or the local one.

In order: ``BLOBSTORE_TEST_DATABASE_URL`` (any reachable PostgreSQL),
a testcontainers PostgreSQL when ``BLOBSTORE_TEST_USE_DOCKER=1``, else the
local server at ``postgresql://postgres@127.0.0.1:5432/test``. Each test
session works in a database of its own, created here and dropped afterwards.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

import asyncpg
from sqlalchemy.engine import make_url

T = TypeVar("T")

LOCAL_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion on a fresh loop in another thread (works inside a running loop too)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


class ServerUnavailable(Exception):
    """The server could not be reached; the message says which one and why."""


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield an admin SQLAlchemy URL of a reachable PostgreSQL server."""
    if url := os.environ.get("BLOBSTORE_TEST_DATABASE_URL"):
        yield url
    elif os.environ.get("BLOBSTORE_TEST_USE_DOCKER") == "1":
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16-alpine", driver="asyncpg") as container:
            yield container.get_connection_url()
    else:
        yield LOCAL_POSTGRES


@contextmanager
def scratch_database(admin_url: str) -> Iterator[str]:
    """Create a uniquely named database on the server, yield its URL, and drop it afterwards."""
    url = make_url(admin_url).set(drivername="postgresql+asyncpg")
    name = f"blobstore_test_{uuid.uuid4().hex[:12]}"
    plain = url.set(drivername="postgresql").render_as_string(hide_password=False)

    async def admin(sql: str) -> None:
        try:
            conn = await asyncpg.connect(plain, timeout=10)
        except (OSError, asyncpg.PostgresError) as exc:
            raise ServerUnavailable(f"PostgreSQL at {url.host}:{url.port} is unreachable: {exc}") from exc
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    run_sync(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        run_sync(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
