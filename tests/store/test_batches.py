"""Batch operations: put_many, delete_many and stat_many end as the same single calls one after another
would, with one outcome (result or error) per item, in few transactions, on every deployment."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from blobstore import (
    AlreadyExists,
    BlobInfo,
    BlobStore,
    IntegrityError,
    InvalidInput,
    InvalidKey,
    NotFound,
    PutItem,
    QuotaExceeded,
    StorageUnavailable,
)
from blobstore.store import MAX_BATCH
from blobstore.testing.faults import Fault, FaultyStorage
from tests.support.stores import FakeClock, StoreFactory
from tests.support.workers import data_objects, invariant_violations, rows

GRACE = 3600.0


def count_transactions(store: BlobStore) -> list[str]:
    """Record the name of every transaction the store runs from now on."""
    seen: list[str] = []
    real = store.database.transaction

    async def transaction(work: Callable[[Any], Awaitable[Any]]) -> Any:
        seen.append(getattr(work, "__name__", "?"))
        return await real(work)

    store.database.transaction = transaction  # type: ignore[method-assign]
    return seen


async def collect_and_check(store: BlobStore, clock: FakeClock) -> None:
    """GC past grace, then nothing leaks and every count is exact."""
    clock.advance(GRACE + 1)
    await store.gc()
    assert await invariant_violations(store) == []


async def test_put_many_stores_every_item_and_reports_dedup_as_single_puts_would(
    store: BlobStore, clock: FakeClock, tmp_path: Path
) -> None:
    """New bytes, bytes the tenant holds, repeats inside the batch and a file path all end stored once each."""
    acme = store.tenant("acme")
    await acme.put("held", b"held bytes")
    path = tmp_path / "file.txt"
    path.write_bytes(b"from a file")
    outcomes = await acme.put_many(
        [
            PutItem("a", b"held bytes"),
            PutItem("b", b"new bytes", content_type="text/plain", metadata={"n": "1"}),
            PutItem("c", b"new bytes"),
            PutItem("d", path),
        ]
    )
    assert all(isinstance(outcome, BlobInfo) for outcome in outcomes)
    infos = [outcome for outcome in outcomes if isinstance(outcome, BlobInfo)]
    assert [(i.key, i.deduplicated) for i in infos] == [("a", True), ("b", False), ("c", True), ("d", False)]
    assert await acme.get("b") == b"new bytes" == await acme.get("c")
    assert await acme.get("d") == b"from a file"
    b = await acme.stat("b")
    assert (b.content_type, b.metadata, b.size) == ("text/plain", {"n": "1"}, 9)
    assert len(await data_objects(store)) == 3
    assert await invariant_violations(store) == []
    await collect_and_check(store, clock)


async def test_a_batch_of_dedup_hits_is_one_transaction_and_of_new_bytes_two(store: BlobStore) -> None:
    """However many items: one transaction binds the dedup hits, one more commits the uploads."""
    acme = store.tenant("acme")
    await acme.put("seed", b"same")
    seen = count_transactions(store)
    assert all(isinstance(o, BlobInfo) for o in await acme.put_many([PutItem(f"k{i}", b"same") for i in range(50)]))
    assert len(seen) == 1
    seen.clear()
    batch = [PutItem(f"n{i}", f"new {i}".encode()) for i in range(20)]
    assert all(isinstance(o, BlobInfo) for o in await acme.put_many(batch))
    assert len(seen) == 2
    assert (await store.quota("acme")).used_objects == 71
    assert await invariant_violations(store) == []


async def test_each_item_gets_the_error_its_single_put_would_raise_and_the_rest_are_stored(
    store: BlobStore, clock: FakeClock
) -> None:
    """Bad keys, repeated keys, if_absent on an existing key, a digest mismatch and a str fail alone."""
    acme = store.tenant("acme")
    await acme.put("exists", b"old")
    outcomes = await acme.put_many(
        [
            PutItem("bad\x07", b"x"),
            PutItem("ok", b"fine"),
            PutItem("ok", b"again"),
            PutItem("exists", b"new", if_absent=True),
            PutItem("mismatch", b"bytes", digest="0" * 64),
            PutItem("text", "a str"),  # type: ignore[arg-type]
            PutItem("ok2", b"fine too"),
        ]
    )
    kinds = [type(outcome) for outcome in outcomes]
    assert kinds == [InvalidKey, BlobInfo, InvalidInput, AlreadyExists, IntegrityError, InvalidInput, BlobInfo]
    assert await acme.get("exists") == b"old"
    assert await acme.get("ok") == b"fine"
    assert not await acme.exists("mismatch")
    assert sorted(info.key for info in await acme.list()) == ["exists", "ok", "ok2"]
    assert await invariant_violations(store) == []
    await collect_and_check(store, clock)


async def test_quota_is_checked_item_by_item_in_order(store: BlobStore, clock: FakeClock) -> None:
    """With room for three more objects, the first three items of five are stored and the rest refused."""
    acme = store.tenant("acme")
    await acme.put("seed", b"seed")
    await store.set_quota("acme", max_objects=4)
    batch = [PutItem("seed", b"replaced: no new object")] + [PutItem(f"k{i}", f"v{i % 2}".encode()) for i in range(5)]
    outcomes = await acme.put_many(batch)
    assert [type(o) for o in outcomes] == [BlobInfo] * 4 + [QuotaExceeded] * 2
    quota = await store.quota("acme")
    assert quota.used_objects == 4
    assert quota.used_bytes == len(b"replaced: no new object") + 3 * 2
    assert await invariant_violations(store) == []
    await collect_and_check(store, clock)


async def test_replacing_keys_in_a_batch_releases_their_old_bytes(store: BlobStore, clock: FakeClock) -> None:
    """Keys replaced by a batch drop their old blob, which GC reclaims once nothing references it."""
    acme = store.tenant("acme")
    await acme.put("x", b"old")
    await acme.put("y", b"old")
    outcomes = await acme.put_many([PutItem("x", b"new"), PutItem("y", b"newer"), PutItem("z", b"old")])
    assert all(isinstance(outcome, BlobInfo) for outcome in outcomes)
    assert [await acme.get(k) for k in ("x", "y", "z")] == [b"new", b"newer", b"old"]
    assert (await store.quota("acme")).used_bytes == 3 + 5 + 3
    await acme.delete("z")
    await collect_and_check(store, clock)
    assert len(await data_objects(store)) == 2


async def test_a_failed_upload_fails_only_its_items_and_leaves_nothing_behind(
    store: BlobStore, clock: FakeClock
) -> None:
    """A write that fails gives its items that error; the other items of the batch are stored."""
    storage = FaultyStorage(store.storage)
    store.core = replace(store.core, storage=storage)
    acme = store.tenant("acme")
    fault = storage.inject(Fault("write", error=StorageUnavailable("injected: 503"), key_prefix="data/"))
    outcomes = await acme.put_many([PutItem("a", b"first"), PutItem("b", b"second"), PutItem("c", b"first")])
    assert fault.hits == 1
    failed = [i for i, outcome in enumerate(outcomes) if isinstance(outcome, StorageUnavailable)]
    assert failed in ([0, 2], [1])
    assert all(isinstance(outcomes[i], BlobInfo) for i in range(3) if i not in failed)
    assert await rows(store, "SELECT state FROM blobs WHERE state <> 'live'") == []
    assert await invariant_violations(store) == []
    await collect_and_check(store, clock)


async def test_batches_of_the_same_bytes_racing_count_every_reference(
    open_store: StoreFactory, deployment: str
) -> None:
    """Two stores (as two processes) put the same new bytes in batches at once: one blob, every key counted."""
    stores = [await open_store(deployment), await open_store(deployment)]
    batches = [[PutItem(f"s{n}/{i}", b"shared bytes") for i in range(30)] for n in range(2)]
    results = await asyncio.gather(*(s.tenant("acme").put_many(b) for s, b in zip(stores, batches, strict=True)))
    assert all(isinstance(outcome, BlobInfo) for outcomes in results for outcome in outcomes)
    assert await rows(stores[0], "SELECT refcount FROM blobs WHERE state = 'live'") == [(60,)]
    assert await invariant_violations(stores[0]) == []


async def test_delete_many_deletes_each_key_once_and_frees_quota(store: BlobStore, clock: FakeClock) -> None:
    """Existing keys are deleted (True), missing and repeated ones are False, bad ones InvalidKey."""
    acme = store.tenant("acme")
    for key in ("a", "b", "c"):
        await acme.put(key, b"shared")
    await store.tenant("other").put("a", b"other's")
    outcomes = await acme.delete_many(["a", "missing", "a", "bad\x07", "b"])
    assert outcomes[:3] == [True, False, False]
    assert isinstance(outcomes[3], InvalidKey)
    assert outcomes[4] is True
    assert [info.key for info in await acme.list()] == ["c"]
    assert await store.tenant("other").get("a") == b"other's"
    quota = await store.quota("acme")
    assert (quota.used_objects, quota.used_bytes) == (1, 6)
    assert await store.tenant("nobody").delete_many(["a"]) == [False]
    assert await invariant_violations(store) == []
    await acme.delete_many(["c"])
    await collect_and_check(store, clock)
    assert await data_objects(store) != []  # other's bytes stay


async def test_stat_many_answers_per_key_and_never_shows_another_tenants_keys(store: BlobStore) -> None:
    """Found keys give their BlobInfo; missing keys and other tenants' keys NotFound; bad keys InvalidKey."""
    acme = store.tenant("acme")
    stored = await acme.put("a", b"value", content_type="text/plain")
    await store.tenant("other").put("theirs", b"secret")
    outcomes = await acme.stat_many(["a", "theirs", "bad\x07", "a"])
    assert isinstance(outcomes[0], BlobInfo)
    assert (outcomes[0].key, outcomes[0].digest, outcomes[0].size) == ("a", stored.digest, 5)
    assert outcomes[0].content_type == "text/plain"
    assert isinstance(outcomes[1], NotFound)
    assert isinstance(outcomes[2], InvalidKey)
    assert outcomes[3] == outcomes[0]
    assert all(isinstance(o, NotFound) for o in await store.tenant("nobody").stat_many(["a"]))


async def test_a_batch_larger_than_the_limit_is_refused_whole(store: BlobStore) -> None:
    """More than MAX_BATCH items: InvalidInput, and nothing is stored."""
    acme = store.tenant("acme")
    with pytest.raises(InvalidInput):
        await acme.put_many([PutItem(f"k{i}", b"x") for i in range(MAX_BATCH + 1)])
    with pytest.raises(InvalidInput):
        await acme.delete_many(["k"] * (MAX_BATCH + 1))
    with pytest.raises(InvalidInput):
        await acme.stat_many(["k"] * (MAX_BATCH + 1))
    assert len(await acme.list()) == 0


async def test_an_upload_reclaimed_by_gc_mid_batch_is_uploaded_again(store: BlobStore, clock: FakeClock) -> None:
    """A batch whose uploader stalled past its lease (GC took the upload) uploads those bytes again."""
    storage = FaultyStorage(store.storage)
    store.core = replace(store.core, storage=storage)
    acme = store.tenant("acme")

    def stall() -> None:
        clock.advance(store.settings.upload_lease_seconds + 1)

    storage.inject(Fault("write", phase="after", key_prefix="data/", action=stall))
    real_write = storage.write
    reclaimed: list[int] = []

    async def write_then_gc(key: str, source: Any) -> None:
        await real_write(key, source)
        if not reclaimed:
            reclaimed.append((await store.gc()).blobs_reclaimed)

    storage.write = write_then_gc  # type: ignore[method-assign]
    outcomes = await acme.put_many([PutItem("a", b"stalled bytes")])
    assert reclaimed
    assert reclaimed[0] >= 1
    assert isinstance(outcomes[0], BlobInfo)
    assert await acme.get("a") == b"stalled bytes"
    assert await invariant_violations(store) == []
