"""A worker process killed with SIGKILL at a named point of spooling a put or draining the spool.

    python tests/support/spool_crash_worker.py POINT

It opens the store (with a spool) named by the ``BLOBSTORE_*`` environment, puts :data:`PRELUDE` while
storage answers, then makes object writes fail with StorageUnavailable (injected: what a backend raises
once its retries are spent) and puts :data:`SPOOLED`, printing ``ACK put KEY`` after each. For a
``spool-*`` point it arms the kill and puts ``CRASH_KEY`` during the outage; for a ``drain-*`` point the
outage is over: it arms the kill and drains. Right before it dies it prints ``CRASH POINT``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # run as a script: make the checkout importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from blobstore import BlobStore, Settings, StorageUnavailable
from blobstore.storage import LocalStorage, open_storage_from_url
from blobstore.testing.faults import Fault, FaultyStorage

TENANT = "acme"
PRELUDE = {"before/1": b"stored before the outage", "before/2": b"also before" * 100}
SPOOLED = {"during/1": b"spooled during the outage" * 50, "during/2": b"spooled too", "during/3": b"spooled too"}
CRASH_KEY = "crash/put"
CRASH_VALUE = b"the spooled put that never got its reply\n" * 100
POINTS = ("spool-after-mark", "spool-after-write", "drain-after-upload", "drain-after-switch")


def say(line: str) -> None:
    print(line, flush=True)


def die(point: str) -> None:
    say(f"CRASH {point}")
    os.kill(os.getpid(), signal.SIGKILL)


def kill_around(target: Any, name: str, point: str, *, after: bool) -> None:
    """Kill the process right before (or after) the next call of ``target.name``."""
    real = getattr(target, name)

    async def call(*args: Any, **kwargs: Any) -> Any:
        if after:
            await real(*args, **kwargs)
        die(point)

    setattr(target, name, call)


async def main(point: str) -> None:
    settings = Settings.from_env()
    inner = open_storage_from_url(settings.storage_url, endpoint_url=None, region=settings.s3_region)
    assert isinstance(inner, LocalStorage)
    storage = FaultyStorage(inner)
    async with await BlobStore.open(settings, storage=storage) as store:
        spool = store.core.spool
        assert spool is not None, "the worker needs BLOBSTORE_SPOOL_DIR"
        tenant = store.tenant(TENANT)
        for key, data in PRELUDE.items():
            await tenant.put(key, data)
            say(f"ACK put {key}")
        # The first spooled put finds object storage down; the process remembers that (blobstore.core.outage),
        # so the puts after it spool without trying storage.
        storage.inject(Fault("write", key_prefix="data/", error=StorageUnavailable("outage"), times=1))
        for key, data in SPOOLED.items():
            await tenant.put(key, data)
            say(f"ACK put {key}")
        if point.startswith("spool"):
            kill_around(spool.storage, "write", point, after=point == "spool-after-write")
            await tenant.put(CRASH_KEY, CRASH_VALUE)
            say(f"ACK put {CRASH_KEY}")
        else:
            if point == "drain-after-upload":
                storage.inject(Fault("write", key_prefix="data/", phase="after", action=lambda: die(point)))
            else:
                kill_around(spool.storage, "delete_many", point, after=False)
            await store.drain_spool()
            say("ACK drain")
    say("SURVIVED")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
