"""P5: listing a page of 1000 keys deep inside 1,000,000 keys of one tenant, against the first page.

Setup (never timed): one real put creates the tenant and a blob, then the
keys ``k/0000000`` ... are inserted straight into ``refs`` in SQL (COPY on
PostgreSQL, one executemany on SQLite), all pointing at that blob, and the
tables are analysed. Subject: ``Tenant.list(limit=1000, after=<the key at
90 % of the range>)``. Baseline: ``Tenant.list(limit=1000)``, the first page.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncConnection

from benchmarks.deployments import open_store, postgres_database, raw_postgres, sqlite_bulk
from benchmarks.harness import (
    Context,
    Paired,
    Row,
    Stopwatch,
    Target,
    guarded,
    interleave,
    latency_row,
    phase,
    unmeasured,
)
from blobstore import BlobStore, Tenant

TARGET = Target("<=", 1.5)
PAGE = 1000


@dataclass(frozen=True)
class Sizes:
    keys: int
    rounds: int = 7
    pages: int = 5  # listings per batch
    page: int = PAGE  # keys per listing


QUICK = Sizes(keys=100_000, rounds=9)
FULL = Sizes(keys=1_000_000, rounds=21)


def _what(sizes: Sizes) -> str:
    return f"page of {sizes.page} deep in {sizes.keys:,} keys"


def _key(i: int) -> str:
    return f"k/{i:07d}"


async def run(ctx: Context, sizes: Sizes | None = None) -> list[Row]:
    sizes = sizes or (QUICK if ctx.quick else FULL)
    what = _what(sizes)
    rows = await guarded(_sqlite(ctx, sizes), "P5", "sqlite", what, TARGET)
    if ctx.postgres_admin_url is None:
        rows.append(unmeasured("P5", "postgres", what, TARGET, "skip", "PostgreSQL disabled for this run"))
    else:
        rows += await guarded(_postgres(ctx, sizes), "P5", "postgres", what, TARGET)
    return rows


async def _seed(store: BlobStore) -> tuple[Tenant, int, int]:
    """The tenant, its id and the id of the blob every key will point at."""
    tenant = store.tenant("bench")
    await tenant.put("seed", b"listing")

    async def ids(conn: AsyncConnection) -> tuple[int, int]:
        row = (await conn.exec_driver_sql("SELECT tenant_id, blob_id FROM refs WHERE key = 'seed'")).one()
        return int(row[0]), int(row[1])

    tenant_id, blob_id = await store.database.transaction(ids)
    return tenant, tenant_id, blob_id


def _batches(tenant: Tenant, sizes: Sizes) -> tuple[Callable[[], Awaitable[float]], Callable[[], Awaitable[float]]]:
    deep = _key(sizes.keys * 9 // 10)

    async def first_pages() -> float:
        with Stopwatch() as watch:
            for _ in range(sizes.pages):
                page = await tenant.list(limit=sizes.page)
        assert len(page) == sizes.page
        return watch.seconds

    async def deep_pages() -> float:
        with Stopwatch() as watch:
            for _ in range(sizes.pages):
                page = await tenant.list(limit=sizes.page, after=deep)
        assert len(page) == sizes.page
        assert page.items[0].key > deep
        return watch.seconds

    return first_pages, deep_pages


def _row(variant: str, sizes: Sizes, paired: Paired, note: str) -> Row:
    deep = sizes.keys * 9 // 10
    notes = f"{note}; subject: list(limit={sizes.page}, after=key #{deep:,}); baseline: list(limit={sizes.page})"
    return latency_row("P5", variant, _what(sizes), paired, sizes.pages, TARGET, notes)


async def _sqlite(ctx: Context, sizes: Sizes) -> list[Row]:
    home = ctx.workdir / "p5-sqlite"
    async with open_store(home) as store:
        tenant, tenant_id, blob_id = await _seed(store)
        with phase(ctx, f"P5 sqlite: insert {sizes.keys:,} refs"):
            _fill_sqlite(home / "blobstore.db", tenant_id, blob_id, sizes.keys)
        baseline, subject = _batches(tenant, sizes)
        with phase(ctx, "P5 sqlite"):
            paired = await interleave(sizes.rounds, baseline, subject)
    return [_row("sqlite", sizes, paired, "SQLite")]


def _fill_sqlite(path: Path, tenant_id: int, blob_id: int, keys: int) -> None:
    now = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")
    rows = ((tenant_id, _key(i), blob_id, 7, None, "{}", now) for i in range(keys))
    sqlite_bulk(
        path,
        "INSERT INTO refs (tenant_id, key, blob_id, size, content_type, metadata, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        rows,
    )


async def _postgres(ctx: Context, sizes: Sizes) -> list[Row]:
    with postgres_database(ctx) as url:
        async with open_store(ctx.workdir / "p5-postgres", database_url=url) as store:
            tenant, tenant_id, blob_id = await _seed(store)
            with phase(ctx, f"P5 postgres: COPY {sizes.keys:,} refs"):
                now = datetime.now(UTC).replace(tzinfo=None)
                async with raw_postgres(url) as raw:
                    await raw.copy_records_to_table(
                        "refs",
                        records=(
                            (tenant_id, _key(i), blob_id, 7, None, json.dumps({}), now) for i in range(sizes.keys)
                        ),
                        columns=["tenant_id", "key", "blob_id", "size", "content_type", "metadata", "created_at"],
                    )
                    await raw.execute("VACUUM ANALYZE refs")
            baseline, subject = _batches(tenant, sizes)
            with phase(ctx, "P5 postgres"):
                paired = await interleave(sizes.rounds, baseline, subject)
    return [_row("postgres", sizes, paired, "PostgreSQL")]
