"""A batch put on a local directory syncs its objects together (blobstore/protocol/uploads.py, the deferred writes
of blobstore/storage/local.py): one fsync per file and one per distinct directory, every one of them before the
commit that makes the blobs live, and an item whose sync failed is not acknowledged.

``os.fsync`` is wrapped to count the real syncs (and, for the failure tests, to fail one as a dying disk would).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from blobstore import BlobInfo, NotFound, PutItem, StorageUnavailable
from blobstore.protocol.uploads import Uploader
from tests.support.digests import digest_of
from tests.support.stores import StoreFactory
from tests.support.workers import data_objects, invariant_violations, rows


@dataclass
class Syncs:
    """What happened, in order: ``("file", path)``, ``("dir", path)`` and ``("commit", "")``."""

    events: list[tuple[str, str]] = field(default_factory=list)
    fail: Callable[[str, str], bool] = lambda kind, path: False

    def of(self, kind: str) -> list[str]:
        return [path for seen, path in self.events if seen == kind]


@pytest.fixture
def syncs(monkeypatch: pytest.MonkeyPatch) -> Syncs:
    """Record every ``os.fsync`` (and each commit of a put's written uploads); fail those ``fail`` picks."""
    recorded = Syncs()
    real_fsync = os.fsync
    real_promote = Uploader._promote

    def fsync(fd: int) -> None:
        kind = "dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"
        path = str(Path(f"/proc/self/fd/{fd}").readlink())
        if recorded.fail(kind, path):
            raise OSError(errno.EIO, "injected: I/O error")
        real_fsync(fd)
        recorded.events.append((kind, path))

    async def promote(uploader: Uploader, *args: Any) -> Any:
        recorded.events.append(("commit", ""))
        return await real_promote(uploader, *args)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(Uploader, "_promote", promote)
    return recorded


def batch_with_shared_directory(others: int) -> dict[str, bytes]:
    """Keys and distinct bytes: two whose objects share their fan-out directory (``data/ab/``), and ``others``
    more (found by a seeded birthday search: a few hundred digests)."""
    seen: dict[str, bytes] = {}
    count = 0
    while True:
        data = b"item %d\n" % count * 100
        count += 1
        prefix = digest_of(data)[:2]
        if prefix in seen:
            pair = [seen.pop(prefix), data]
            break
        seen[prefix] = data
    rest = list(seen.values())[:others]
    return {f"k/{i}": data for i, data in enumerate(pair + rest)}


async def test_a_batch_syncs_each_file_and_each_directory_once_before_its_commit(
    open_store: StoreFactory, syncs: Syncs
) -> None:
    store = await open_store("sqlite-local")
    await store.tenant("acme").put("first", b"creates the root, data/ and the store's marker")
    before = set(await data_objects(store))
    batch = batch_with_shared_directory(others=10)
    syncs.events.clear()

    outcomes = await store.tenant("acme").put_many([PutItem(key, data) for key, data in batch.items()])

    assert all(isinstance(outcome, BlobInfo) for outcome in outcomes), outcomes
    root = Path(store.storage.url.removeprefix("file://"))
    new_files = {root / key for key in set(await data_objects(store)) - before}
    assert sorted(syncs.of("file")) == sorted(str(path) for path in new_files)  # one fsync per file
    directories = syncs.of("dir")
    assert len(directories) == len(set(directories))  # each directory once
    leaves = {str(path.parent) for path in new_files}
    assert len(leaves) == len(batch) - 1  # the shared one: 12 files, 11 leaf directories synced
    assert leaves <= set(directories)
    assert [kind for kind, _ in syncs.events][-1] == "commit"  # every sync before the one commit
    assert syncs.of("commit") == [""]
    for key, data in batch.items():
        assert await store.tenant("acme").get(key) == data


async def test_a_single_put_keeps_its_own_sync_of_file_then_directory(open_store: StoreFactory, syncs: Syncs) -> None:
    store = await open_store("sqlite-local")
    await store.tenant("acme").put("first", b"creates the root")
    syncs.events.clear()
    await store.tenant("acme").put("one", b"one object")
    kinds = [kind for kind, _ in syncs.events]
    assert kinds[:1] == ["file"]
    assert kinds[-1] == "commit"
    assert syncs.of("file")[0].endswith(".upload")  # synced as its temporary file, before the rename


@pytest.mark.parametrize("kind", ["file", "dir"])
async def test_a_failed_sync_fails_only_the_items_it_affects_and_acknowledges_none_of_them(
    open_store: StoreFactory, syncs: Syncs, kind: str
) -> None:
    store = await open_store("sqlite-local")
    tenant = store.tenant("acme")
    await tenant.put("first", b"creates the root")
    batch = {f"k/{i}": b"distinct bytes %d\n" % i * 50 for i in range(5)}
    victim = digest_of(batch["k/2"])
    leaf = f"/data/{victim[:2]}"
    syncs.fail = lambda seen, path: seen == kind and (victim in path if kind == "file" else path.endswith(leaf))

    outcomes = dict(zip(batch, await tenant.put_many([PutItem(k, d) for k, d in batch.items()]), strict=True))

    assert isinstance(outcomes.pop("k/2"), StorageUnavailable)
    assert all(isinstance(outcome, BlobInfo) for outcome in outcomes.values()), outcomes
    with pytest.raises(NotFound):
        await tenant.get("k/2")
    for key in outcomes:
        assert await tenant.get(key) == batch[key]
    assert not await rows(store, "SELECT id FROM blobs WHERE digest = :d", d=victim)  # discarded, row and object
    assert not [key for key in await data_objects(store) if victim in key]
    assert await invariant_violations(store) == []
    syncs.fail = lambda seen, path: False
    assert isinstance(await tenant.put("k/2", batch["k/2"]), BlobInfo)  # a retry stores it
