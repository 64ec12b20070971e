"""The hand-computed data set of the cost-report tests, and every figure it must produce.

Blobs (bytes): A 1000, B 301, C 500, D 250, E 77, F 10. Tenants are created
in the order acme, globex, initech, hooli (so acme is the first holder of any
blob it holds). Final references::

    acme     a/1 -> A, a/5 -> A (copy of a/1), a/3 -> B, a/4 -> D (replaced C)   (a/2 -> A put, then deleted)
    globex   g/1 -> B, g/2 -> B, g/3 -> F                                          (g/9 -> E put, then deleted)
    initech  i/1 -> A
    hooli    nothing (only a quota)

Attribution: A has 3 references (acme 2, initech 1): 1000 // 3 = 333 each, the
remainder 1 to acme (first holder): acme 667, initech 333. B has 3 (acme 1,
globex 2): 100 each, remainder 1 to acme: acme 101, globex 200. D (250) is
acme's alone, F (10) globex's. Physical 1561 = 1018 + 210 + 333.

Pending GC: C (replaced) 500 and E (deleted) 77, an upload abandoned two hours
the day before (40) and a tombstoned blob (3): 4 blobs, 620 bytes. An upload begun a
minute ago (5000) is in flight, not pending.

Egress: on 2026-03-31 acme reads a/1 (1000) and globex g/3 (10); on
2026-04-01 acme reads bytes 0-99 of a/3 (100) and all of a/4 (250), initech
reads i/1 (1000), and acme opens a/1 without reading it (nothing).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from blobstore import BlobStore
from blobstore.db import batches, catalog
from tests.support.stores import FakeClock

MARCH_31 = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)
APRIL_1 = datetime(2026, 4, 1, 10, 0, tzinfo=UTC)
TODAY = APRIL_1.date()

A, B, C, D, E, F = (bytes([65 + i]) * size for i, size in enumerate([1000, 301, 500, 250, 77, 10]))

#: tenant -> objects, logical, unique, shared, attributed (bytes_saved = logical - attributed).
FIGURES = {
    "acme": (4, 2551, 250, 1301, 1018),
    "globex": (3, 612, 10, 301, 210),
    "hooli": (0, 0, 0, 0, 0),
    "initech": (1, 1000, 0, 1000, 333),
}
#: Egress in April (the default window on April 1) and since March 1.
EGRESS_APRIL = {"acme": 350, "globex": 0, "hooli": 0, "initech": 1000}
EGRESS_SINCE_MARCH = {"acme": 1350, "globex": 10, "hooli": 0, "initech": 1000}

TOTAL = {
    "tenants": 4,
    "objects": 8,
    "logical_bytes": 4163,
    "unique_bytes": 260,
    "shared_bytes": 1301,
    "attributed_bytes": 1561,
    "physical_bytes": 1561,
    "bytes_saved": 2602,
    "blobs": 4,
    "pending_gc_blobs": 4,
    "pending_gc_bytes": 620,
    "stored_bytes": 2181,
    # Blobs under 4 KiB are stored raw: their compressed bytes are their sizes.
    "compressed_bytes": 1561,
    "compression_saved_bytes": 0,
    "pending_gc_compressed_bytes": 620,
    "compressed_stored_bytes": 2181,
}
MARCH_1 = date(2026, 3, 1)


async def build(store: BlobStore, clock: FakeClock) -> None:
    """Put the data set into an empty store, reading as described, leaving the clock on April 1."""
    clock.now = MARCH_31
    acme, globex, initech = store.tenant("acme"), store.tenant("globex"), store.tenant("initech")
    await acme.put("a/1", A)
    await globex.put("g/1", B)
    await initech.put("i/1", A)
    await store.set_quota("hooli", max_bytes=10**6)
    await acme.put("a/2", A)
    await acme.copy("a/1", "a/5")
    await acme.delete("a/2")
    await acme.put("a/3", B)
    await acme.put("a/4", C)
    await acme.put("a/4", D)
    await globex.put("g/2", B)
    await globex.put("g/3", F)
    await globex.put("g/9", E)
    await globex.delete("g/9")

    async def leftovers(conn: AsyncConnection) -> None:
        lapsed = MARCH_31 + timedelta(minutes=1)
        stale = [("1" * 64, 40, "data/11/abandoned"), ("2" * 64, 3, "data/22/tombstoned")]
        _, tombstoned = await batches.insert_uploads(conn, "", stale, MARCH_31, lapsed)
        await catalog.abandon(conn, tombstoned)
        started = APRIL_1 - timedelta(minutes=1)
        in_flight = [("3" * 64, 5000, "data/33/in-flight")]
        await batches.insert_uploads(conn, "", in_flight, started, APRIL_1 + timedelta(hours=1))

    assert await acme.get("a/1") == A
    assert await globex.get("g/3") == F
    clock.now = APRIL_1
    await store.database.transaction(leftovers)
    async with acme.open("a/3", byte_range=(0, 99)) as stream:
        assert len(await stream.read()) == 100
    assert await acme.get("a/4") == D
    assert await initech.get("i/1") == A
    async with acme.open("a/1"):
        pass
    await store.core.egress.flush()  # reads' egress is written within a second; other processes report right away
