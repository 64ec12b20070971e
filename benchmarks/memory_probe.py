"""The child process of P4: one transfer, with its resident memory measured before and at the peak.

``python -m benchmarks.memory_probe OP HOME SIZE`` opens the store in HOME
(SQLite + local directory), warms every code path up with a tiny transfer,
records VmRSS, performs OP (``put-stream``: an async iterator of SIZE bytes;
``put-path``: the file HOME/input.bin; ``get``: stream the key ``path`` back
and discard it; ``gc`` / ``fsck``: one GC run with grace 0 / one fsck over the
whole store, reporting what it finds), and prints JSON: VmRSS before, VmHWM after (the kernel's
peak; it cannot be reset, hence a fresh process per transfer), and the peaks
of VmRSS and RssAnon sampled every 5 ms, all in KiB.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

from blobstore import BlobStore, Settings

CHUNK = 1024 * 1024


def status() -> dict[str, int]:
    """The ``Vm*``/``Rss*`` lines of /proc/self/status, in KiB."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name.startswith(("Vm", "Rss")):
            fields[name] = int(value.split()[0])
    return fields


class Sampler(threading.Thread):
    """Polls /proc/self/status and keeps the highest VmRSS and RssAnon seen."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak_rss = self.peak_anon = 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            now = status()
            self.peak_rss = max(self.peak_rss, now["VmRSS"])
            self.peak_anon = max(self.peak_anon, now["RssAnon"])
            time.sleep(0.005)

    def stop(self) -> None:
        self._done.set()
        self.join()


async def stream(size: int, seed: bytes) -> AsyncIterator[bytes]:
    """``size`` bytes: ``seed`` (so every stream is unique) and then one reused random chunk."""
    filler = os.urandom(CHUNK)
    yield seed
    sent = len(seed)
    while sent < size:
        chunk = filler[: size - sent]
        sent += len(chunk)
        yield chunk


async def probe(op: str, home: Path, size: int) -> dict[str, object]:
    settings = Settings(
        home=home,
        database_url=f"sqlite+aiosqlite:///{home / 'blobstore.db'}",
        storage_url=(home / "blobs").as_uri(),
        gc_grace_seconds=0,
    )
    async with await BlobStore.open(settings) as store:
        tenant = store.tenant("bench")
        await tenant.put(f"warm/{os.getpid()}", stream(3 * CHUNK, os.urandom(CHUNK)))
        async with tenant.open(f"warm/{os.getpid()}") as warm:
            async for _ in warm:
                pass
        gc.collect()
        before = status()
        sampler = Sampler()
        sampler.start()
        started = time.perf_counter()
        if op == "put-stream":
            await tenant.put("stream", stream(size, os.urandom(CHUNK)))
        elif op == "put-path":
            await tenant.put("path", home / "input.bin")
        elif op == "get":
            async with tenant.open("path") as blob:
                async for _ in blob:
                    pass
        elif op == "gc":
            await store.gc()
        elif op == "fsck":
            await store.fsck()
        else:
            raise SystemExit(f"unknown op {op!r}")
        seconds = time.perf_counter() - started
        sampler.stop()
        after = status()
    return {
        "op": op,
        "size": size,
        "seconds": seconds,
        "before_rss_kib": before["VmRSS"],
        "before_hwm_kib": before["VmHWM"],
        "hwm_kib": after["VmHWM"],
        "sampled_peak_rss_kib": sampler.peak_rss,
        "sampled_peak_anon_kib": sampler.peak_anon,
        "before_anon_kib": before["RssAnon"],
    }


if __name__ == "__main__":
    op, home, size = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    print(json.dumps(asyncio.run(probe(op, home, size))))
