"""Import a source into a tenant: parallel, streamed, resumable, every failure reported.

Resuming is explicit: before storing a file, the import looks up its key among
the tenant's keys under the prefix (listed once, at the start); a key that
already has the file's size *and* digest is skipped and counted. Everything
else goes through ``Tenant.put_many`` (batches of files, each one or two
transactions), which stores bytes the store already holds by reference only,
so an import interrupted at any point (Ctrl-C, a killed process, a storage
outage) and run again never stores anything twice and ends with the source's
contents under the prefix.
"""

from __future__ import annotations

import math
import mimetypes
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from blobstore.core.ingest import PutData, new_hasher
from blobstore.errors import BlobStoreError
from blobstore.model.results import BlobInfo
from blobstore.store import MAX_BATCH, MAX_LIST_LIMIT, PutItem, Tenant
from blobstore.transfer.parallel import Advance, check_jobs, for_each, no_advance
from blobstore.transfer.selection import Entry, Selection
from blobstore.transfer.sources import READ_WHOLE, Failure, ImportSource, shown

#: Keys per page when listing what a tenant already holds.
_LIST_PAGE = MAX_LIST_LIMIT
#: Batches an import aims at per job (:func:`batched`) ...
_BATCHES_PER_JOB = 2
#: ... of at least this many files ...
_MIN_BATCH = 100
#: ... and hold at most this many bytes of the small files a source reads into memory (:data:`READ_WHOLE`).
_BATCH_HELD = 16 * 1024 * 1024


@dataclass(frozen=True)
class StoredKey:
    """What a tenant's key holds now: enough to tell whether a source file is already imported."""

    size: int
    digest: str


async def stored_keys(tenant: Tenant, prefix: str) -> dict[str, StoredKey]:
    """Every key of ``tenant`` under ``prefix`` with its size and digest (about 200 bytes of memory per key)."""
    found: dict[str, StoredKey] = {}
    after: str | None = None
    while True:
        page = await tenant.list(prefix, limit=_LIST_PAGE, after=after)
        found.update((info.key, StoredKey(info.size, info.digest)) for info in page)
        if page.next_after is None:
            return found
        after = page.next_after


def content_type_of(path: str) -> str | None:
    """The content type a file's name suggests (``mimetypes``), or None."""
    return mimetypes.guess_type(path, strict=False)[0]


@dataclass
class ImportResult:
    """What an import did; ``ok`` when nothing failed."""

    tenant: str
    source: str
    prefix: str
    #: Files the globs selected, and how many they left out.
    files: int = 0
    excluded: int = 0
    #: Files stored by this run (``deduplicated`` of them as references to bytes the tenant already held).
    imported: int = 0
    imported_bytes: int = 0
    deduplicated: int = 0
    #: Files whose key already held the same size and digest (an earlier run imported them).
    skipped: int = 0
    skipped_bytes: int = 0
    failures: list[Failure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "source": self.source,
            "prefix": self.prefix,
            "files": self.files,
            "excluded": self.excluded,
            "imported": self.imported,
            "imported_bytes": self.imported_bytes,
            "deduplicated": self.deduplicated,
            "skipped": self.skipped,
            "skipped_bytes": self.skipped_bytes,
            "failed": len(self.failures),
            "failures": [failure.to_dict() for failure in self.failures],
        }


async def import_source(
    tenant: Tenant, source: ImportSource, plan: Selection, *, jobs: int = 4, progress: Advance = no_advance
) -> ImportResult:
    """Store every file of ``plan`` (see :func:`~blobstore.transfer.selection.plan_import`), ``jobs`` at a time.

    ``progress`` is called with each file's size as it is done. Files that fail
    (and names that cannot be keys) are listed in the result; nothing stops at the first.
    """
    check_jobs(jobs)
    result = ImportResult(tenant.name, plan.source, plan.prefix, files=len(plan.entries), excluded=plan.excluded)
    result.failures += plan.problems
    held = await stored_keys(tenant, plan.prefix)

    async def one_batch(batch: list[Entry]) -> None:
        await _import_batch(tenant, source, batch, held, result)
        for entry in batch:
            progress(entry.file.size)

    await for_each(batched(plan.entries, jobs), jobs, one_batch)
    result.failures.sort(key=lambda failure: failure.path)
    return result


def batched(entries: Sequence[Entry], jobs: int) -> Iterator[list[Entry]]:
    """``entries`` in order, in batches for ``jobs`` workers: large (each is one or two transactions and, on a
    local directory, one fsync per directory that gained objects), yet :data:`_BATCHES_PER_JOB` per job or
    more where there are enough files or bytes (at most an equal share of the files and of the bytes each),
    so that every worker has work, one batch's syncs overlap another's reading and hashing, and an
    interrupted import keeps what its first batches stored. A batch holds at least :data:`_MIN_BATCH` files
    (unless their bytes are too many), at most ``MAX_BATCH``, and at most :data:`_BATCH_HELD` bytes of files
    a source reads into memory (:data:`READ_WHOLE`)."""
    shares = _BATCHES_PER_JOB * jobs
    most = min(MAX_BATCH, max(_MIN_BATCH, math.ceil(len(entries) / shares)))
    most_bytes = max(_BATCH_HELD, math.ceil(sum(entry.file.size for entry in entries) / shares))
    batch: list[Entry] = []
    held = size = 0
    for entry in entries:
        small = entry.file.size if entry.file.size <= READ_WHOLE else 0
        if batch and (len(batch) == most or held + small > _BATCH_HELD or size + entry.file.size > most_bytes):
            yield batch
            batch, held, size = [], 0, 0
        batch.append(entry)
        held += small
        size += entry.file.size
    if batch:
        yield batch


async def _import_batch(
    tenant: Tenant, source: ImportSource, batch: list[Entry], held: dict[str, StoredKey], result: ImportResult
) -> None:
    """Skip the entries an earlier run imported, store the rest with one ``put_many``; record every outcome."""
    todo: list[Entry] = []
    data: list[PutData] = []
    for entry, read in zip(batch, await source.contents([entry.file for entry in batch]), strict=True):
        if isinstance(read, Exception):
            _failed(result, entry, read)
        else:
            todo.append(entry)
            data.append(read)
    todo, data = await _not_imported(source, todo, data, held, result)
    if not todo:
        return
    try:
        items = [PutItem(e.key, d, content_type=content_type_of(e.file.path)) for e, d in zip(todo, data, strict=True)]
        outcomes: list[BlobInfo | BlobStoreError | OSError] = list(await tenant.put_many(items))
    except OSError:  # a source file that failed mid-read (not a store error) fails its batch: retry file by file
        outcomes = [await _put_one(tenant, source, entry) for entry in todo]
    for entry, outcome in zip(todo, outcomes, strict=True):
        if isinstance(outcome, BlobInfo):
            result.imported += 1
            result.imported_bytes += outcome.size
            result.deduplicated += outcome.deduplicated
        else:
            _failed(result, entry, outcome)


async def _not_imported(
    source: ImportSource, entries: list[Entry], data: list[PutData], held: dict[str, StoredKey], result: ImportResult
) -> tuple[list[Entry], list[PutData]]:
    """The entries (with their data) whose key does not already hold the file's size and digest; the others
    are counted as skipped. Only a file whose key holds its size is hashed here: its bytes if they were read,
    else the file, all in one call."""
    candidates = [index for index, entry in enumerate(entries) if _same_size(held.get(entry.key), entry)]
    unread = [entries[index].file for index in candidates if not isinstance(data[index], bytes)]
    hashed = iter(await source.digests(unread) if unread else [])
    settled: set[int] = set()  # skipped, or failed while hashed
    for index in candidates:
        read, stored = data[index], held[entries[index].key]
        found = _digest_of(read) if isinstance(read, bytes) else next(hashed)
        if isinstance(found, Exception):
            _failed(result, entries[index], found)
            settled.add(index)
        elif found == (stored.digest, stored.size):
            result.skipped += 1
            result.skipped_bytes += stored.size
            settled.add(index)
    kept = [index for index in range(len(entries)) if index not in settled]
    return [entries[index] for index in kept], [data[index] for index in kept]


def _same_size(stored: StoredKey | None, entry: Entry) -> bool:
    return stored is not None and stored.size == entry.file.size


def _digest_of(data: bytes) -> tuple[str, int]:
    """The store's digest of ``data`` (small: hashed here) and its size."""
    hasher = new_hasher()
    hasher.update(data)
    return str(hasher.hexdigest()), len(data)


async def _put_one(tenant: Tenant, source: ImportSource, entry: Entry) -> BlobInfo | BlobStoreError | OSError:
    """One file stored alone: its BlobInfo, or the error that stopped it."""
    try:
        return await tenant.put(entry.key, await source.data(entry.file), content_type=content_type_of(entry.file.path))
    except (BlobStoreError, OSError) as exc:
        return exc


def _failed(result: ImportResult, entry: Entry, exc: Exception) -> None:
    result.failures.append(Failure(shown(entry.file.path), str(exc) or type(exc).__name__))
