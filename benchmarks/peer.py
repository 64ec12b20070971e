"""peer: 256 KiB puts into a local directory, blobstore against svc-infra 1.22.2's ``LocalBackend.put``.

svc-infra's storage backend is what this product's users start from: no
database, no fsync, no hashing; it writes a temporary file, renames it, and
writes a JSON metadata file beside it. Subject: ``Tenant.put`` on SQLite + a
local directory, of bytes already stored (dedup hit: only a reference is
added) and of new bytes (unique). Baseline: ``LocalBackend.put`` of the same
bytes under the same number of new keys, in the same process and rounds.

svc-infra is installed without its dependencies (``pip install --no-deps
svc-infra==1.22.2``; its local backend needs only aiofiles): its package
``__init__`` pulls in a web stack the backend does not use, so the backend
module is loaded without running it.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import sys
import types
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.deployments import open_store
from benchmarks.harness import Context, Row, Stopwatch, Target, interleave, phase, throughput_row, unmeasured

KiB = 1024
SIZE = 256 * KiB
WHAT = "256 KiB puts, local directory, vs svc-infra LocalBackend.put"
TARGETS = {"dedup hit": Target(">=", 2), "unique": Target(">=", 0.5)}


@dataclass(frozen=True)
class Sizes:
    puts: int  # per batch
    rounds: int


QUICK = Sizes(puts=50, rounds=3)
FULL = Sizes(puts=150, rounds=5)


def load_svc_infra() -> bool:
    """Make svc-infra's storage modules importable without running the ``__init__`` of ``svc_infra`` or
    ``svc_infra.storage`` (they would import the web stack); False when svc-infra is not installed."""
    spec = importlib.util.find_spec("svc_infra")
    if spec is None or spec.origin is None:
        return False
    root = Path(spec.origin).parent
    for name, folder in (("svc_infra", root), ("svc_infra.storage", root / "storage")):
        if name not in sys.modules:  # namespace stand-ins
            package = types.ModuleType(name)
            package.__path__ = [str(folder)]
            sys.modules[name] = package
    return True


def local_backend() -> Any:
    """svc-infra's ``LocalBackend`` class, or None when svc-infra is not installed."""
    if not load_svc_infra():
        return None
    from svc_infra.storage.backends.local import LocalBackend

    return LocalBackend


async def run(ctx: Context, sizes: Sizes | None = None) -> list[Row]:
    sizes = sizes or (QUICK if ctx.quick else FULL)
    backend_class = local_backend()
    if backend_class is None:
        note = "svc-infra is not installed (pip install --no-deps svc-infra==1.22.2)"
        return [unmeasured("peer", variant, WHAT, target, "skip", note) for variant, target in TARGETS.items()]
    work = ctx.workdir / "peer"
    backend = backend_class(base_path=str(work / "svc-infra"))
    rows = []
    async with open_store(work / "store") as store:
        tenant = store.tenant("bench")
        same = os.urandom(SIZE)
        await tenant.put("seed", same)
        batches = itertools.count()
        for variant, target in TARGETS.items():

            def payloads(variant: str = variant) -> list[bytes]:
                return [same if variant == "dedup hit" else os.urandom(SIZE) for _ in range(sizes.puts)]

            async def svc_infra(data: list[bytes]) -> None:
                number = next(batches)
                for i, payload in enumerate(data):
                    await backend.put(f"peer/{number}/{i}", payload, "application/octet-stream")

            async def blobstore(data: list[bytes]) -> None:
                number = next(batches)
                for i, payload in enumerate(data):
                    await tenant.put(f"peer/{number}/{i}", payload, content_type="application/octet-stream")

            with phase(ctx, f"peer {variant}"):
                paired = await interleave(sizes.rounds, _timed(svc_infra, payloads), _timed(blobstore, payloads))
            mib = sizes.puts * SIZE / (1024 * KiB)
            notes = f"{sizes.puts} puts of 256 KiB per batch; baseline: svc-infra 1.22.2 LocalBackend.put (no fsync)"
            rows.append(throughput_row("peer", variant, WHAT, paired, mib, "MiB/s", target, notes))
    return rows


def _timed(
    put_all: Callable[[list[bytes]], Awaitable[None]], payloads: Callable[[], list[bytes]]
) -> Callable[[], Awaitable[float]]:
    async def batch() -> float:
        data = payloads()
        with Stopwatch() as watch:
            await put_all(data)
        return watch.seconds

    return batch
