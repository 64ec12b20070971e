"""Egress metering off the read path: reads count their bytes in memory; a ledger writes them in batches.

A read adds the bytes it handed to its caller to the store's :class:`EgressLedger`
when it ends (no database round trip). The ledger writes what it holds within
:data:`FLUSH_SECONDS` in one transaction (one upsert per tenant and UTC day), and
before anything that reports egress (``BlobStore.report``, tenant usage) and when
the store closes, so every figure a report shows is exact. The same write records
the UTC day each blob was read on (``blobs.last_read_at``, midnight of the day; a
blob's row is written at most once per day, whatever the reads), which lifecycle
transitions read to keep a read blob in STANDARD (blobstore.model.transitions). Trade-off, chosen
for read latency: a process killed outright loses the egress of its last
:data:`FLUSH_SECONDS` of reads (never more, never double counted); a failed
write keeps the counts for the next one.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, date, datetime, time
from typing import Self

from sqlalchemy import BigInteger, Date, func, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from blobstore.db.catalog import dialect_insert, tenants
from blobstore.db.engine import Database
from blobstore.db.models import tables

log = logging.getLogger(__name__)

#: Most seconds a read's egress waits in memory before it is written.
FLUSH_SECONDS = 1.0


class EgressMeter:
    """Wraps a read's chunks, counting the bytes that actually stream through."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks
        self.bytes = 0

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> bytes:
        chunk = await anext(self._chunks)
        self.bytes += len(chunk)
        return chunk


class EgressLedger:
    """Bytes read per (tenant, UTC day) not yet written, and the task that writes them."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._pending: Counter[tuple[str, date]] = Counter()
        self._read_blobs: set[tuple[int, date]] = set()
        self._writer: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def add(self, tenant: str, day: date, nbytes: int, blob_id: int | None = None) -> None:
        """Count ``nbytes`` read by ``tenant`` on ``day`` (nothing for 0), of the blob ``blob_id`` (its last read
        day recorded too); written within FLUSH_SECONDS."""
        if nbytes <= 0:
            return
        self._pending[tenant, day] += nbytes
        if blob_id is not None:
            self._read_blobs.add((blob_id, day))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_soon())

    async def flush(self) -> None:
        """Write every count held now; on failure they stay held (and the error is raised)."""
        async with self._lock:
            taken, self._pending = self._pending, Counter()
            reads, self._read_blobs = self._read_blobs, set()
            if not taken and not reads:
                return

            async def work(conn: AsyncConnection) -> None:
                await record_many(conn, taken)
                await record_reads(conn, reads)

            # Shielded: a cancelled flush still learns whether its write committed, so no count is
            # dropped or written twice.
            write = asyncio.ensure_future(self._database.transaction(work))
            try:
                await asyncio.shield(write)
            except asyncio.CancelledError:
                await asyncio.wait([write])
                if write.cancelled() or write.exception() is not None:
                    self._keep(taken, reads)
                raise
            except BaseException:
                self._keep(taken, reads)
                raise

    def _keep(self, taken: Counter[tuple[str, date]], reads: set[tuple[int, date]]) -> None:
        """Hold again what a failed write did not record."""
        self._pending.update(taken)
        self._read_blobs |= reads

    async def close(self) -> None:
        """Stop the writer, then write what is held (best effort, logged)."""
        await self.stop()
        try:
            await self.flush()
        except Exception:
            log.warning("could not record egress on close", exc_info=True)

    async def stop(self) -> None:
        """Stop the writer, writing nothing more: what a killed process does (its held counts are lost)."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.cancel()
            await asyncio.wait([writer])
            if not writer.cancelled() and writer.exception() is not None:
                log.warning("the egress writer had stopped on an error", exc_info=writer.exception())

    async def _write_soon(self) -> None:
        while self._pending or self._read_blobs:
            await asyncio.sleep(FLUSH_SECONDS)
            try:
                await self.flush()
            except Exception:
                log.warning("could not record egress; retrying", exc_info=True)


egress = tables["egress"]
blobs = tables["blobs"]
#: Most blobs one UPDATE of read days names (well under SQLite's limit of bound parameters).
READS_PER_STATEMENT = 500


async def record(conn: AsyncConnection, tenant: str, day: date, nbytes: int) -> None:
    """Add ``nbytes`` to the tenant's egress on ``day`` in one statement,
    ``INSERT ... SELECT ... ON CONFLICT (tenant_id, day) DO UPDATE SET bytes = bytes + excluded.bytes``,
    which concurrent readers in any number of processes cannot lose updates of.
    A tenant that has no row records nothing.
    """
    source = select(tenants.c.id, literal(day, Date), literal(nbytes, BigInteger)).where(tenants.c.name == tenant)
    statement = dialect_insert(conn, egress).from_select(["tenant_id", "day", "bytes"], source)
    await conn.execute(
        statement.on_conflict_do_update(
            index_elements=[egress.c.tenant_id, egress.c.day],
            set_={"bytes": egress.c.bytes + statement.excluded.bytes},
        )
    )


async def record_many(conn: AsyncConnection, counts: Mapping[tuple[str, date], int]) -> None:
    """:func:`record` of each ``(tenant, day) -> bytes``, in the caller's transaction."""
    for (tenant, day), nbytes in sorted(counts.items()):
        await record(conn, tenant, day, nbytes)


async def record_reads(conn: AsyncConnection, reads: set[tuple[int, date]]) -> None:
    """Set each blob's ``last_read_at`` to midnight of the day it was read, if it holds an earlier day (or
    none): one UPDATE per day and :data:`READS_PER_STATEMENT` blobs, in id order, which writes each blob's row at
    most once that day."""
    days: dict[date, list[int]] = {}
    for blob_id, day in reads:
        days.setdefault(day, []).append(blob_id)
    for day, ids in sorted(days.items()):
        midnight = datetime.combine(day, time(), UTC)
        stale = or_(blobs.c.last_read_at.is_(None), blobs.c.last_read_at < midnight)
        ids.sort()
        for start in range(0, len(ids), READS_PER_STATEMENT):
            chunk = ids[start : start + READS_PER_STATEMENT]
            await conn.execute(update(blobs).where(blobs.c.id.in_(chunk), stale).values(last_read_at=midnight))


async def by_tenant(conn: AsyncConnection, since: date, until: date) -> dict[str, int]:
    """Bytes each tenant read from ``since`` to ``until`` (UTC days, both included); absent: read nothing."""
    query = (
        select(tenants.c.name, func.sum(egress.c.bytes))
        .join(tenants, tenants.c.id == egress.c.tenant_id)
        .where(egress.c.day >= since, egress.c.day <= until)
        .group_by(tenants.c.name)
    )
    return {row[0]: int(row[1]) for row in await conn.execute(query)}
