"""A worker process that runs one operation and is killed with SIGKILL at a named point inside it.

    python tests/support/crash_worker.py POINT

It opens the store named by the ``BLOBSTORE_*`` environment, runs a prelude of
operations, printing ``ACK put KEY`` / ``ACK delete KEY`` after each one
returned (a compact point then stores one blob as before frames), then arms
the kill and runs the operation of POINT (see :data:`POINTS`). Right before
it dies it prints ``CRASH POINT``. The kill is test-only code in this process:
a storage wrapper whose fault action kills, a wrapped transaction runner that
kills right after a given transaction committed (or right before compact's
catalog switch), or (mid-multipart) a wrapped S3 client that kills after the first
part went up. A transition point sets a rule that cools every key after a day, moves
its clock two days on and runs transitions, killed as the first blob's object is
copied (before or after the copy). If the point is never reached the worker says ``SURVIVED`` and
exits 0, which the test treats as a failure.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

if __name__ == "__main__":  # run as a script: make the checkout importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from blobstore import BlobStore, PutItem, Settings
from blobstore.db import compaction
from blobstore.protocol.uploads import Uploader
from blobstore.storage import S3Storage, open_storage_from_url
from blobstore.testing.faults import Fault, FaultyStorage
from tests.support.workers import make_raw

T = TypeVar("T")
MiB = 1024 * 1024

TENANT = "acme"
#: Acknowledged before any crash: key -> bytes (two keys share bytes).
PRELUDE = {
    "keep/1": b"first value",
    "keep/2": b"second value" * 100,
    "shared/a": b"shared by two keys",
    "shared/b": b"shared by two keys",
}
#: Deleted (acknowledged) before a GC crash point, so GC has something to reclaim.
DOOMED = ("doomed", b"bytes nobody will reference")
#: The key and bytes of the crashing put: 64 KiB that compress (its object is one zstd frame); the multipart one
#: spans three 5 MiB parts (it does not compress, so its object is as long as it is).
CRASH_KEY = "crash/put"
SMALL_PAYLOAD = b"the put that never got its reply\n" * 2000
LARGE_PAYLOAD = random.Random(11).randbytes(11 * MiB)
#: The keys and bytes of the crashing batch put (its objects are written together, then made durable together).
BATCH = {f"crash/batch/{i}": f"batch item {i} that never got its reply\n".encode() * 500 for i in range(3)}
#: The key the crashing delete removes.
DELETED_KEY = "keep/2"

POINTS = (
    "put-after-intent",
    "put-after-upload",
    "put-after-commit",
    "put-mid-multipart",
    "batch-before-sync",
    "batch-after-sync",
    "stream-mid-staging",
    "stream-after-publish",
    "delete-after-commit",
    "gc-after-tombstone",
    "gc-after-storage-delete",
    "compact-after-intent",
    "compact-after-write",
    "compact-after-verify",
    "compact-after-switch",
    "transition-after-mark",
    "transition-after-copy",
)
#: The key whose blob a compact crash point rewrites: stored as before frames, right after the prelude.
COMPACTED_KEY = "keep/2"
#: The class a transition point's rule moves every blob to, once a day cold.
COLD_CLASS = "STANDARD_IA"


def payload(point: str) -> bytes:
    """The bytes the crashing put of ``point`` stores (a stream put's are long enough to be staged)."""
    return LARGE_PAYLOAD if point == "put-mid-multipart" or point.startswith("stream") else SMALL_PAYLOAD


async def pieces(data: bytes) -> AsyncIterator[bytes]:
    """``data`` as a stream of 1 MiB chunks."""
    for start in range(0, len(data), MiB):
        yield data[start : start + MiB]


def say(line: str) -> None:
    print(line, flush=True)


def die(point: str) -> None:
    """Announce the crash point and die at once, as a killed process does: no clean-up, no flush."""
    say(f"CRASH {point}")
    os.kill(os.getpid(), signal.SIGKILL)


def kill_after_transaction(store: BlobStore, point: str) -> None:
    """Kill the process right after the next transaction commits."""
    real = store.database.transaction

    async def transaction(work: Callable[[Any], Awaitable[T]]) -> T:
        await real(work)
        die(point)
        raise AssertionError("unreachable")

    store.database.transaction = transaction  # type: ignore[method-assign]


def kill_around_switch(store: BlobStore, point: str, *, before: bool) -> None:
    """Kill the process right before compact's catalog switch begins, or right after it committed."""
    real = store.database.transaction

    async def transaction(work: Callable[[Any], Awaitable[T]]) -> T:
        switch = getattr(work, "func", None) is compaction.switch_to_framed
        if switch and before:
            die(point)
        result = await real(work)
        if switch:
            die(point)
        return result

    store.database.transaction = transaction  # type: ignore[method-assign]


def kill_after_put_commit(point: str) -> None:
    """Kill the process right after a put's commit step (binding its written upload) committed, on whichever
    path it ran (blobstore.protocol.uploads)."""
    real = Uploader._promote

    async def promote(uploader: Uploader, *args: Any) -> Any:
        await real(uploader, *args)
        die(point)

    Uploader._promote = promote  # type: ignore[method-assign]


async def kill_after_first_part(storage: S3Storage, point: str) -> None:
    """Write above 5 MiB as multipart, one part at a time, and kill the process once the first part is up."""
    storage.multipart_threshold = 5 * MiB
    storage.part_size = 5 * MiB
    storage.max_concurrency = 1
    client = await storage._s3()
    real = client.upload_part

    async def upload_part(**kwargs: Any) -> Any:
        response = await real(**kwargs)
        die(point)
        return response

    client.upload_part = upload_part


async def main(point: str) -> None:
    settings = Settings.from_env()
    inner = open_storage_from_url(
        settings.storage_url, endpoint_url=settings.s3_endpoint_url, region=settings.s3_region
    )
    storage = FaultyStorage(inner)
    ahead = [timedelta(0)]  # a transition point moves its clock on, so that the prelude's keys are cold
    async with await BlobStore.open(settings, storage=storage, clock=lambda: datetime.now(UTC) + ahead[0]) as store:
        tenant = store.tenant(TENANT)
        for key, data in PRELUDE.items():
            await tenant.put(key, data)
            say(f"ACK put {key}")
        if point.startswith("gc"):
            await tenant.put(*DOOMED)
            say(f"ACK put {DOOMED[0]}")
            await tenant.delete(DOOMED[0])
            say(f"ACK delete {DOOMED[0]}")
        if point.startswith("compact"):
            await make_raw(store, TENANT, COMPACTED_KEY, PRELUDE[COMPACTED_KEY])
        if point.startswith("transition"):
            await store.set_lifecycle_rule(TENANT, "", transition_after=86400, storage_class=COLD_CLASS)
            ahead[0] = timedelta(days=2)

        # Arm the kill, then run the operation it interrupts.
        if point == "put-after-intent":
            storage.inject(Fault("write", key_prefix="data/", action=lambda: die(point)))
        elif point == "put-after-upload":
            storage.inject(Fault("write", key_prefix="data/", phase="after", action=lambda: die(point)))
        elif point == "put-after-commit":
            kill_after_put_commit(point)
        elif point == "put-mid-multipart":
            assert isinstance(inner, S3Storage), "mid-multipart needs S3"
            await kill_after_first_part(inner, point)
        elif point in ("batch-before-sync", "batch-after-sync"):
            phase = "before" if point == "batch-before-sync" else "after"
            storage.inject(Fault("make_durable", phase=phase, action=lambda: die(point)))
        elif point == "stream-mid-staging":
            storage.inject(Fault("stage_write", skip=2, action=lambda: die(point)))
        elif point == "stream-after-publish":
            storage.inject(Fault("write", key_prefix="data/", phase="after", action=lambda: die(point)))
        elif point == "delete-after-commit":
            kill_after_transaction(store, point)
        elif point == "gc-after-tombstone":
            storage.inject(Fault("delete_many", action=lambda: die(point)))
        elif point == "gc-after-storage-delete":
            storage.inject(Fault("delete_many", phase="after", action=lambda: die(point)))
        elif point == "compact-after-intent":
            storage.inject(Fault("write", key_prefix="data/", action=lambda: die(point)))
        elif point == "compact-after-write":
            storage.inject(Fault("write", key_prefix="data/", phase="after", action=lambda: die(point)))
        elif point in ("compact-after-verify", "compact-after-switch"):
            kill_around_switch(store, point, before=point == "compact-after-verify")
        elif point == "transition-after-mark":
            storage.inject(Fault("set_storage_class", action=lambda: die(point)))
        elif point == "transition-after-copy":
            storage.inject(Fault("set_storage_class", phase="after", action=lambda: die(point)))
        else:
            raise SystemExit(f"unknown crash point {point!r}; choose from {', '.join(POINTS)}")

        if point.startswith("put"):
            await tenant.put(CRASH_KEY, payload(point))
            say(f"ACK put {CRASH_KEY}")
        elif point.startswith("batch"):
            await tenant.put_many([PutItem(key, data) for key, data in BATCH.items()])
            for key in BATCH:
                say(f"ACK put {key}")
        elif point.startswith("stream"):
            await tenant.put(CRASH_KEY, pieces(payload(point)))
            say(f"ACK put {CRASH_KEY}")
        elif point.startswith("delete"):
            await tenant.delete(DELETED_KEY)
            say(f"ACK delete {DELETED_KEY}")
        elif point.startswith("compact"):
            await store.compact()
            say("ACK compact")
        elif point.startswith("transition"):
            await store.transition()
            say("ACK transition")
        else:
            await store.gc()
            say("ACK gc")
    say("SURVIVED")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
