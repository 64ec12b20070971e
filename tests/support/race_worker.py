"""A worker process that races other workers on one deployment (named by the ``BLOBSTORE_*`` environment).

    python tests/support/race_worker.py churn --rounds 400 --seed 1 --index 0 --sync DIR
    python tests/support/race_worker.py storm --count 16 --index 0 --sync DIR

``churn``: rounds of put / delete / GC / read over two shared keys and one
key of the worker's own, all holding the same bytes, so every put races
deletes of the last reference and GC runs (with the grace period the
environment sets, 0 in the race tests). It checks as it goes: a read of a key
never returns other bytes; a key of its own that it put and has not deleted
always reads back (an acknowledged put is durable); and a read that fails with
IntegrityError is only ever a key deleted and collected under the read, never
a reference to a missing object.

``storm``: ``count`` concurrent puts of the same bytes to distinct keys.

Every worker waits until all are started (``--sync``), then prints one JSON
line: what it did, and every violation it saw (none, if the store is right).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import text

if __name__ == "__main__":  # run as a script: make the checkout importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from blobstore import BlobStore, IntegrityError, NotFound, Tenant
from tests.support.gate import wait_for_go

TENANT = "race"
PAYLOAD = b"the same bytes, put and deleted by everyone " * 20
#: Few keys, deleted more often than put, so the blob's last reference keeps going away.
SHARED_KEYS = ("shared/0", "shared/1")
STORM_PAYLOAD = b"hot blob: everybody uploads me at once " * 50


def own_keys(index: int) -> tuple[str]:
    """The keys only worker ``index`` writes (and deletes)."""
    return (f"own/{index}",)


async def blob_of(store: BlobStore, key: str) -> tuple[int, str] | None:
    """(blob id, object key) that ``key`` points at right now, or None."""
    async with store.database.engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT b.id, b.object_key FROM refs r JOIN blobs b ON b.id = r.blob_id "
                    "JOIN tenants t ON t.id = r.tenant_id WHERE t.name = :t AND r.key = :k"
                ),
                {"t": TENANT, "k": key},
            )
        ).first()
    return None if row is None else (row[0], row[1])


class Churn:
    def __init__(self, store: BlobStore, index: int, seed: int) -> None:
        self.store = store
        self.tenant: Tenant = store.tenant(TENANT)
        self.rng = random.Random(seed)
        self.own = own_keys(index)
        self.held: set[str] = set()  # own keys this worker put and has not deleted since
        self.done: Counter[str] = Counter()
        self.violations: list[str] = []

    async def read(self, key: str) -> None:
        try:
            data = await self.tenant.get(key)
        except NotFound:
            self.done["read-missing"] += 1
            if key in self.held:
                self.violations.append(f"acknowledged put of {key} is not found")
            return
        except IntegrityError as error:
            self.done["read-raced-gc"] += 1
            await self.explain_failed_read(key, error)
            return
        self.done["read"] += 1
        if data != PAYLOAD:
            self.violations.append(f"{key} read back {len(data)} other bytes")

    async def explain_failed_read(self, key: str, error: IntegrityError) -> None:
        """A failed read is legal only if the key was deleted and collected under it: a reference that names
        the same blob before and after a moment its object is missing is a lost object."""
        if key in self.held:
            self.violations.append(f"acknowledged put of {key} failed to read: {error}")
        before = await blob_of(self.store, key)
        if before is None or await self.store.storage.stat(before[1]) is not None:
            return
        if await blob_of(self.store, key) == before:
            self.violations.append(f"{key} references blob {before[0]}, whose object {before[1]} is gone")

    async def put(self, key: str) -> None:
        try:
            info = await self.tenant.put(key, PAYLOAD)
        except IntegrityError as error:  # with grace 0, GC may reclaim an upload before it commits, thrice
            if "outlasting the GC grace period" not in str(error):
                raise
            self.done["put-reclaimed"] += 1
            return
        self.done["put"] += 1
        if not info.deduplicated:  # no key held the bytes: this put revived or re-uploaded them
            self.done["put-after-last-delete"] += 1
        if key in self.own:
            self.held.add(key)
        await self.read(key)

    async def round(self) -> None:
        op = self.rng.choices(["put", "delete", "gc", "read"], weights=[2, 4, 3, 1])[0]
        key = self.rng.choice(SHARED_KEYS + self.own)
        if op == "put":
            await self.put(key)
        elif op == "delete":
            self.held.discard(key)
            self.done["delete" if await self.tenant.delete(key) else "delete-missing"] += 1
        elif op == "gc":
            stats = await self.store.gc()
            self.done["gc"] += 1
            self.done["gc-reclaimed"] += stats.blobs_reclaimed + stats.orphans_deleted
        else:
            await self.read(key)

    async def run(self, rounds: int) -> dict[str, Any]:
        for _ in range(rounds):
            await self.round()
        for key in self.held:
            await self.read(key)
        return {"done": dict(self.done), "held": sorted(self.held), "violations": self.violations}


async def storm(store: BlobStore, index: int, count: int) -> dict[str, Any]:
    tenant = store.tenant(TENANT)
    infos = await asyncio.gather(*(tenant.put(f"storm/{index}/{i}", STORM_PAYLOAD) for i in range(count)))
    return {"done": {"put": len(infos)}, "digests": sorted({info.digest for info in infos}), "violations": []}


async def main(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=["churn", "storm"])
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--count", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--sync", type=Path, required=True)
    args = parser.parse_args(argv)
    async with await BlobStore.open() as store:
        await wait_for_go(args.sync, args.index)
        if args.mode == "churn":
            return await Churn(store, args.index, args.seed).run(args.rounds)
        return await storm(store, args.index, args.count)


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1:]))))
