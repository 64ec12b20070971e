"""Stores and raw connections for the benchmarks: SQLite or a scratch PostgreSQL database, local or S3 storage.

PostgreSQL databases and S3 buckets are created for one benchmark and
dropped after it, with the same helpers the tests use (``tests/support/servers.py``,
``tests/support/s3_server.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aioboto3
import aiosqlite
import asyncpg
from aiobotocore.config import AioConfig

from benchmarks.harness import Context
from blobstore import BlobStore, Settings
from blobstore.core.config import Compression
from blobstore.storage import ObjectStorage
from tests.support.s3_server import S3Endpoint, aws_credentials, moto_server, temporary_bucket
from tests.support.servers import LOCAL_POSTGRES, ServerUnavailable, plain_postgres_url, scratch_database

#: The SQLite settings blobstore uses on every connection (blobstore.db.engine), for raw baselines.
SQLITE_PRAGMAS = ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL", "PRAGMA busy_timeout=60000")


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def postgres_reachable(admin_url: str = LOCAL_POSTGRES) -> str | None:
    """Why the server cannot be used, or None if it answers."""

    async def probe() -> None:
        conn = await asyncpg.connect(plain_postgres_url(admin_url), timeout=5)
        await conn.close()

    try:
        asyncio.run(probe())
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return f"PostgreSQL at {admin_url} is unreachable: {exc}"
    return None


@contextlib.contextmanager
def postgres_database(ctx: Context) -> Iterator[str]:
    """A scratch PostgreSQL database (SQLAlchemy URL), dropped afterwards."""
    if ctx.postgres_admin_url is None:
        raise ServerUnavailable("PostgreSQL is disabled for this run")
    with scratch_database(ctx.postgres_admin_url) as url:
        yield url


@dataclass(frozen=True)
class S3Bucket:
    """A bucket on a running S3 endpoint (credentials are in the environment while it lives)."""

    endpoint: S3Endpoint
    name: str

    def client(self) -> Any:
        """A raw aioboto3 client configured like blobstore's (path-style, no extra checksums)."""
        config = AioConfig(
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        return aioboto3.Session().client(
            "s3", endpoint_url=self.endpoint.url, region_name=self.endpoint.region, config=config
        )


@contextlib.asynccontextmanager
async def s3_bucket() -> AsyncIterator[S3Bucket]:
    """moto's S3 server, in this process, with a fresh bucket; all gone afterwards."""
    with aws_credentials(), moto_server() as url:
        endpoint = S3Endpoint(url)
        async with temporary_bucket(endpoint) as name:
            yield S3Bucket(endpoint, name)


@contextlib.asynccontextmanager
async def open_store(
    home: Path,
    *,
    database_url: str | None = None,
    storage_url: str | None = None,
    s3_endpoint_url: str | None = None,
    storage: ObjectStorage | None = None,
    compression: Compression = "auto",
) -> AsyncIterator[BlobStore]:
    """A migrated store; SQLite in ``home`` and a directory in ``home`` unless told otherwise."""
    home.mkdir(parents=True, exist_ok=True)
    settings = Settings(
        home=home,
        database_url=database_url or sqlite_url(home / "blobstore.db"),
        storage_url=storage_url or (home / "blobs").as_uri(),
        s3_endpoint_url=s3_endpoint_url,
        compression=compression,
    )
    store = await BlobStore.open(settings, storage=storage, migrate_schema=True)
    try:
        yield store
    finally:
        await store.close()


@contextlib.asynccontextmanager
async def raw_sqlite(path: Path) -> AsyncIterator[aiosqlite.Connection]:
    """An aiosqlite connection set up like blobstore's (WAL, full fsync, autocommit off by hand)."""
    conn = await aiosqlite.connect(path, isolation_level=None)
    try:
        for pragma in SQLITE_PRAGMAS:
            await conn.execute(pragma)
        yield conn
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def raw_postgres(url: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain asyncpg connection to the database at SQLAlchemy ``url``."""
    conn = await asyncpg.connect(plain_postgres_url(url))
    try:
        yield conn
    finally:
        await conn.close()


def sqlite_bulk(path: Path, sql: str, rows: Any) -> None:
    """Insert many rows with the stdlib driver in one transaction, then ANALYZE (setup only, never timed)."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        with conn:
            conn.executemany(sql, rows)
        conn.execute("ANALYZE")
