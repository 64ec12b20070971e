"""The dry run of an import: hash every file, store nothing, and say what importing would store and cost.

Figures (``unique`` counts each distinct digest once):

``files``, ``logical_bytes``
    the selected files and the sum of their sizes: what a store without dedup would hold.
``unique_bytes``
    the source's bytes after dedup within the source.
``held_bytes``
    of those, the bytes the store already holds in the dedup scope the import
    would use: every tenant's blobs when ``BLOBSTORE_DEDUP_SCOPE=global`` (an
    import dedups against all of them), the tenant's own when ``tenant``.
    Looking across tenants needs the operator's view of the database, which
    ``import`` has; the tenant API alone could not see it.
``new_bytes``
    ``unique - held``: the bytes the import would add to storage. A real import
    of the same tree into an unchanged store adds exactly these.
``cost_before``, ``cost_after``
    the monthly storage cost of ``logical_bytes`` (the source as stored today,
    every file in full) and of ``new_bytes`` (what the store adds), at a price list.
``estimated_stored_bytes``
    an estimate of what ``new_bytes`` take stored as frames, compressed where that pays: the first bytes of
    up to ``compression_sample_files`` new files are compressed as a put would (blobstore.transfer.sampling)
    and their ratio is applied to ``new_bytes``.
``already_imported``
    files whose key already holds the same size and digest: a real import skips them.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from blobstore.accounting.pricing import PriceList, decimal_text, price_list
from blobstore.db.live_blobs import live_digests
from blobstore.store import BlobStore
from blobstore.transfer.importer import stored_keys
from blobstore.transfer.parallel import Advance, check_jobs, for_each, no_advance
from blobstore.transfer.sampling import CompressionSample, sample_compression, spread
from blobstore.transfer.selection import Entry, Selection
from blobstore.transfer.sources import Failure, ImportSource, SourceFile, shown

#: Duplicate groups a dry run lists (the largest by bytes saved).
TOP_GROUPS = 10
#: Paths listed per duplicate group.
GROUP_PATHS = 5
#: Files hashed per batch (one worker-thread hop each), and the bytes at which a batch closes early.
BATCH_FILES = 64
BATCH_BYTES = 32 * 1024 * 1024


@dataclass
class DuplicateGroup:
    """Files of the source with identical bytes: ``count`` copies of ``size`` bytes, the first ``paths`` in order."""

    digest: str
    size: int
    count: int = 0
    paths: list[str] = field(default_factory=list)

    @property
    def saved_bytes(self) -> int:
        """What storing these bytes once saves: every copy but one."""
        return self.size * (self.count - 1)

    def to_dict(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "size": self.size,
            "count": self.count,
            "saved_bytes": self.saved_bytes,
            "paths": list(self.paths),
        }


@dataclass
class DryRun:
    """The report of a dry run (see the module docstring for each figure)."""

    generated_at: datetime
    tenant: str
    source: str
    prefix: str
    dedup_scope: str
    pricing: PriceList
    files: int = 0
    excluded: int = 0
    logical_bytes: int = 0
    unique_bytes: int = 0
    held_bytes: int = 0
    already_imported: int = 0
    duplicate_groups: list[DuplicateGroup] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    compression_sample: CompressionSample = field(default_factory=CompressionSample)

    @property
    def estimated_stored_bytes(self) -> int:
        return self.compression_sample.scaled(self.new_bytes)

    @property
    def new_bytes(self) -> int:
        return self.unique_bytes - self.held_bytes

    @property
    def saved_bytes(self) -> int:
        return self.logical_bytes - self.new_bytes

    @property
    def dedup_ratio(self) -> float | None:
        """Logical bytes per unique byte of the source; None for an empty source."""
        return self.logical_bytes / self.unique_bytes if self.unique_bytes else None

    @property
    def cost_before(self) -> Decimal:
        return self.pricing.storage_cost(self.logical_bytes)

    @property
    def cost_after(self) -> Decimal:
        return self.pricing.storage_cost(self.new_bytes)

    def to_dict(self) -> dict[str, Any]:
        ratio = self.dedup_ratio
        return {
            "generated_at": self.generated_at.isoformat(),
            "tenant": self.tenant,
            "source": self.source,
            "prefix": self.prefix,
            "dedup_scope": self.dedup_scope,
            "pricing": self.pricing.to_dict(),
            "files": self.files,
            "excluded": self.excluded,
            "logical_bytes": self.logical_bytes,
            "unique_bytes": self.unique_bytes,
            "held_bytes": self.held_bytes,
            "new_bytes": self.new_bytes,
            "saved_bytes": self.saved_bytes,
            "dedup_ratio": None if ratio is None else round(ratio, 4),
            "estimated_stored_bytes": self.estimated_stored_bytes,
            "compression_sample_files": self.compression_sample.files,
            "compression_estimate": f"estimated from {self.compression_sample.files} sampled files",
            "already_imported": self.already_imported,
            "cost_before": decimal_text(self.cost_before),
            "cost_after": decimal_text(self.cost_after),
            "duplicate_groups": [group.to_dict() for group in self.duplicate_groups],
            "failed": len(self.failures),
            "failures": [failure.to_dict() for failure in self.failures],
        }


def batched(entries: list[Entry]) -> Iterator[list[Entry]]:
    """The entries in order, in batches of at most :data:`BATCH_FILES` files or about :data:`BATCH_BYTES` bytes."""
    batch: list[Entry] = []
    weight = 0
    for entry in entries:
        batch.append(entry)
        weight += entry.file.size
        if len(batch) == BATCH_FILES or weight >= BATCH_BYTES:
            yield batch
            batch, weight = [], 0
    if batch:
        yield batch


async def dry_run(
    store: BlobStore,
    tenant: str,
    source: ImportSource,
    plan: Selection,
    *,
    jobs: int = 4,
    pricing: str | PriceList | None = None,
    progress: Advance = no_advance,
) -> DryRun:
    """Read and hash every file of ``plan`` (``jobs`` at a time) and report; nothing is stored.

    ``progress`` is called with each file's size as it is hashed.
    """
    check_jobs(jobs)
    prices = pricing if isinstance(pricing, PriceList) else price_list(pricing)
    handle = store.tenant(tenant)
    report = DryRun(
        store.clock(), tenant, plan.source, plan.prefix, store.settings.dedup_scope, prices, excluded=plan.excluded
    )
    report.failures += plan.problems
    held_keys = await stored_keys(handle, plan.prefix)
    groups: dict[str, DuplicateGroup] = {}
    first_files: dict[str, SourceFile] = {}

    async def hash_batch(batch: list[Entry]) -> None:
        for entry, outcome in zip(batch, await source.digests([entry.file for entry in batch]), strict=True):
            if isinstance(outcome, Exception):
                report.failures.append(Failure(shown(entry.file.path), str(outcome) or type(outcome).__name__))
            else:
                digest, size = outcome
                group = groups.setdefault(digest, DuplicateGroup(digest, size))
                first_files.setdefault(digest, entry.file)
                group.count += 1
                bisect.insort(group.paths, shown(entry.file.path))
                del group.paths[GROUP_PATHS:]
                report.files += 1
                report.logical_bytes += size
                stored = held_keys.get(entry.key)
                report.already_imported += stored is not None and (stored.digest, stored.size) == (digest, size)
            progress(entry.file.size)

    await for_each(batched(plan.entries), jobs, hash_batch)
    scope = store.core.dedup_scope_of(tenant)
    held = await store.database.transaction(lambda conn: live_digests(conn, scope, groups))
    report.unique_bytes = sum(group.size for group in groups.values())
    report.held_bytes = sum(groups[digest].size for digest in held)
    new_files = [first_files[digest] for digest in sorted(set(groups) - set(held)) if groups[digest].size]
    report.compression_sample = await sample_compression(source, spread(new_files), store.settings.frame_level)
    duplicates = [group for group in groups.values() if group.count > 1]
    duplicates.sort(key=lambda group: (-group.saved_bytes, group.digest))
    report.duplicate_groups = duplicates[:TOP_GROUPS]
    report.failures.sort(key=lambda failure: failure.path)
    return report
