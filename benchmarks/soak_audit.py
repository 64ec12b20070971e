"""The soak's final audit: with every worker stopped, check the store exactly against the workers' models.

After waiting out the grace period, draining the spool and running one GC (no faults): every
key a worker owns holds one of the values its model allows, read back byte
for byte, no other key exists, and each tenant is charged for exactly the
bytes and keys read back; the bookkeeping invariants hold
(references point at live blobs, refcounts equal references, tenant usage
equals the sums over references, see ``tests/support/workers.py``); nothing
unreferenced is left in the database or in storage, nothing in the spool; fsck --read-data is clean.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from benchmarks.soak_model import TENANTS, Model, content, digest_of, keys_of, listing, match, worker_of
from blobstore import BlobStore, BlobStoreError, Settings, Tenant
from tests.support.workers import invariant_violations, rows


@dataclass
class Audit:
    """What the audit checked and every problem it found (none: passed)."""

    problems: list[str] = field(default_factory=list)
    keys_checked: int = 0
    bytes_verified: int = 0
    final_gc: dict[str, Any] = field(default_factory=dict)
    fsck: dict[str, Any] = field(default_factory=dict)
    #: Blobs the audit's drain moved from the spool into object storage.
    drained: int = 0

    @property
    def passed(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "problems": self.problems,
            "keys_checked": self.keys_checked,
            "bytes_verified": self.bytes_verified,
            "final_gc": self.final_gc,
            "fsck": self.fsck,
            "drained": self.drained,
        }


async def audit(settings: Settings, models: Sequence[Model], *, wait: float) -> Audit:
    """Wait ``wait`` seconds (the grace period and any upload lease), run one GC, then check everything.
    Nothing is injected any more, so any error on the way is itself a problem."""
    await asyncio.sleep(wait)
    result = Audit()
    try:
        await _check(settings, models, result)
    except Exception as exc:
        result.problems.append(f"the audit could not finish: {exc!r}")
    return result


async def _check(settings: Settings, models: Sequence[Model], result: Audit) -> None:
    async with await BlobStore.open(settings) as store:
        if settings.spool_dir is not None:
            result.drained = (await store.drain_spool()).blobs_drained
        result.final_gc = (await store.gc()).to_dict()
        await _check_keys(store, models, result)
        result.problems += await invariant_violations(store, quiescent=True)
        unreferenced = await rows(store, "SELECT id, digest FROM blobs WHERE refcount = 0")
        result.problems += [f"blob {i} ({d[:12]}) is unreferenced after grace + one GC" for i, d in unreferenced]
        spooled = await rows(store, "SELECT id, digest FROM blobs WHERE spooled_on IS NOT NULL")
        result.problems += [f"blob {i} ({d[:12]}) is still spooled after a drain" for i, d in spooled]
        report = await store.fsck(read_data=True)
        result.fsck = {"ok": report.ok, "blobs": report.blobs_checked, "bytes_hashed": report.bytes_hashed}
        result.problems += [f"fsck --read-data: {p.kind} {p.subject}: {p.detail}" for p in report.problems]
        if report.unlisted:
            result.problems.append(f"fsck --read-data: {report.unlisted} more problems ({report.problem_counts})")


async def _check_keys(store: BlobStore, models: Sequence[Model], result: Audit) -> None:
    """Each worker's keys hold allowed values, byte for byte; no key outside the workers' keys exists; each
    tenant's usage (``store.quota``) is the bytes and keys read back."""
    workers = {model.worker for model in models}
    for name in TENANTS:
        tenant = store.tenant(name)
        found = await listing(tenant)
        strangers = [key for key in found if worker_of(key) not in workers]
        result.problems += [f"{name}/{key} exists, but no worker wrote it" for key in strangers]
        sizes = []
        for model in models:
            for key in keys_of(model.worker):
                data = await _read(tenant, key, found, model, result)
                if data is not None:
                    sizes.append(len(data))
        usage = await store.quota(name)
        if not strangers and (usage.used_bytes, usage.used_objects) != (sum(sizes), len(sizes)):
            result.problems.append(
                f"tenant {name} is charged {usage.used_bytes} bytes / {usage.used_objects} keys, "
                f"but holds {sum(sizes)} bytes in {len(sizes)} keys"
            )


async def _read(tenant: Tenant, key: str, found: dict[str, str], model: Model, result: Audit) -> bytes | None:
    """The bytes of ``key`` if it exists, checked against the values the model allows (problems into ``result``)."""
    allowed = model.possible(tenant.name, key)
    shown = sorted(str(value) for value in allowed)
    if key not in found:
        if None not in allowed:
            result.problems.append(f"{tenant.name}/{key} is gone; it must hold one of {shown}")
        return None
    try:
        data = await tenant.get(key)
    except BlobStoreError as exc:
        result.problems.append(f"{tenant.name}/{key} is listed but reading it failed: {exc!r}")
        return None
    value = match(digest_of(data), allowed)
    if value not in allowed or data != content(value):
        result.problems.append(f"{tenant.name}/{key} holds {len(data)} bytes ({value}), not one of {shown}")
    result.keys_checked += 1
    result.bytes_verified += len(data)
    return data
