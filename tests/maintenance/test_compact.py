"""``compact`` on every deployment: blobs stored before frames are rewritten as frames, read back exactly, the
old objects wait out the grace and GC reclaims them; dry runs, --tenant, reruns, corrupt old objects, and
deletes and puts landing between the rewrite and the catalog switch."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import blake3
import pytest

from blobstore import BlobStore, IntegrityError, NotFound
from blobstore.core.framing import ENCODE_IN_MEMORY
from blobstore.storage import read_all
from blobstore.storage.frames import FRAME_SIZE
from tests.support.stores import FakeClock, StoreFactory
from tests.support.workers import data_objects, invariant_violations, make_raw, object_key_of, rows, scalar

GRACE = 3600.0
TEXT = b"".join(b"%08d,2026-12-07T08:00:00Z,GET,/api/items/%d,200\n" % (n, n % 977) for n in range(60_000))
#: key -> bytes, stored raw (as before frames): empty, tiny, text across frames, random (does not compress).
OLD = {
    "empty": b"",
    "tiny": b"x",
    "text": TEXT[: 2 * FRAME_SIZE + 5],
    "random": os.urandom(FRAME_SIZE + 7),
}


async def put_raw(store: BlobStore, tenant: str, items: dict[str, bytes]) -> None:
    for key, data in items.items():
        await store.tenant(tenant).put(key, data)
        await make_raw(store, tenant, key, data)


async def unframed(store: BlobStore) -> int:
    return int(await scalar(store, "SELECT count(*) FROM blobs WHERE state = 'live' AND frames IS NULL"))


async def assert_reads(store: BlobStore, tenant: str, items: dict[str, bytes]) -> None:
    for key, data in items.items():
        assert await store.tenant(tenant).get(key) == data
        if data:
            async with store.tenant(tenant).open(key, (len(data) // 2, len(data) - 1)) as stream:
                assert await stream.read() == data[len(data) // 2 :]


async def assert_clean_after_grace(store: BlobStore, clock: FakeClock) -> None:
    """Past the grace, one GC leaves exactly the live blobs' objects, and fsck --read-data finds nothing."""
    clock.advance(GRACE + 60)
    await store.gc()
    assert await invariant_violations(store) == []
    live = await rows(store, "SELECT object_key FROM blobs WHERE state = 'live'")
    assert await data_objects(store) == sorted(key for (key,) in live)
    report = await store.fsck(read_data=True)
    assert report.problems == []


async def test_compact_rewrites_old_blobs_as_frames_and_gc_reclaims_the_old_objects_past_grace(
    store: BlobStore, clock: FakeClock
) -> None:
    await put_raw(store, "acme", OLD)
    await store.tenant("acme").put("framed", TEXT[:5000])
    old_keys = {key: await object_key_of(store, "acme", key) for key in OLD}

    stats = await store.compact()

    assert (stats.blobs_rewritten, stats.blobs_skipped, stats.failures) == (4, 0, [])
    assert stats.bytes_before == sum(len(data) for data in OLD.values())
    assert stats.bytes_after == int(
        await scalar(
            store,
            "SELECT SUM(stored_size) FROM blobs WHERE object_key <> :k",
            k=await object_key_of(store, "acme", "framed"),
        )
    )
    assert stats.bytes_saved == stats.bytes_before - stats.bytes_after > FRAME_SIZE  # the text compresses
    assert await unframed(store) == 0
    await assert_reads(store, "acme", OLD)
    for key, old_key in old_keys.items():  # new objects; the old ones wait out the grace
        assert await object_key_of(store, "acme", key) != old_key
        assert await read_all(store.storage, old_key) == OLD[key]
    assert (await store.fsck(read_data=True)).problems == []
    await store.gc()
    assert all([await store.storage.stat(old_key) is not None for old_key in old_keys.values()])

    await assert_clean_after_grace(store, clock)
    await assert_reads(store, "acme", OLD)
    assert (await store.compact()).blobs_rewritten == 0  # nothing left: a rerun is a no-op


async def test_a_read_that_began_before_the_switch_finishes_from_the_old_object(store: BlobStore) -> None:
    await put_raw(store, "acme", {"text": OLD["text"]})
    async with store.tenant("acme").open("text") as stream:
        await store.compact()
        await store.gc()  # within the grace: the old object stays
        assert await stream.read() == OLD["text"]


async def test_a_dry_run_estimates_what_a_run_does_and_changes_nothing(store: BlobStore) -> None:
    await put_raw(store, "acme", OLD)
    before = await rows(store, "SELECT id, object_key, state FROM blobs ORDER BY id")
    objects = await data_objects(store)

    estimate = await store.compact(dry_run=True)

    assert await rows(store, "SELECT id, object_key, state FROM blobs ORDER BY id") == before
    assert await data_objects(store) == objects
    done = await store.compact()
    assert estimate.dry_run
    assert not done.dry_run
    assert (estimate.blobs_rewritten, estimate.bytes_before, estimate.bytes_after) == (
        done.blobs_rewritten,
        done.bytes_before,
        done.bytes_after,
    )


async def test_tenant_limits_compact_to_the_blobs_that_tenant_references(store: BlobStore, clock: FakeClock) -> None:
    await put_raw(store, "acme", {"a": OLD["text"]})
    await put_raw(store, "globex", {"g": OLD["random"]})

    stats = await store.compact(tenant="acme")

    assert stats.blobs_rewritten == 1
    assert await unframed(store) == 1
    assert (await store.compact(tenant="nobody")).blobs_rewritten == 0
    assert (await store.compact()).blobs_rewritten == 1  # resumes with what is left
    await assert_reads(store, "acme", {"a": OLD["text"]})
    await assert_reads(store, "globex", {"g": OLD["random"]})
    await assert_clean_after_grace(store, clock)


async def test_a_corrupt_old_object_is_reported_and_left_as_it_is(store: BlobStore, clock: FakeClock) -> None:
    await put_raw(store, "acme", {"good": OLD["text"], "bad": OLD["random"]})
    bad_key = await object_key_of(store, "acme", "bad")
    damaged = bytearray(OLD["random"])
    damaged[100] ^= 0xFF
    await store.storage.write(bad_key, bytes(damaged))

    stats = await store.compact()

    assert stats.blobs_rewritten == 1
    assert len(stats.failures) == 1
    assert stats.failures[0].startswith(bad_key)
    assert await object_key_of(store, "acme", "bad") == bad_key
    assert await unframed(store) == 1
    assert await store.tenant("acme").get("good") == OLD["text"]
    await store.storage.write(bad_key, OLD["random"])  # repaired: the next run takes it
    assert (await store.compact()).blobs_rewritten == 1
    await assert_clean_after_grace(store, clock)


Interleave = Callable[[], Awaitable[None]]


def between_write_and_switch(store: BlobStore, data: bytes, action: Interleave) -> None:
    """Run ``action`` once, right after compact wrote the new object of ``data``'s blob (before it verifies and
    switches)."""
    storage = store.core.storage
    real = storage.write
    pending = [action]
    digest = blake3.blake3(data).hexdigest()

    async def write(key: str, source: object) -> None:
        await real(key, source)  # type: ignore[arg-type]
        if pending and digest in key:
            await pending.pop()()

    storage.write = write  # type: ignore[method-assign]


async def test_a_delete_of_the_last_reference_racing_compact_loses_nothing(
    open_store: StoreFactory, deployment: str, clock: FakeClock
) -> None:
    store = await open_store(deployment, gc_grace_seconds=10.0)  # shorter than compact's upload lease
    await put_raw(store, "acme", {"gone": OLD["text"], "kept": OLD["random"]})

    async def delete_and_collect() -> None:
        await store.tenant("acme").delete("gone")
        clock.advance(20)
        await store.gc()  # reclaims the blob (and its old object) before compact switches; our lease holds

    between_write_and_switch(store, OLD["text"], delete_and_collect)
    stats = await store.compact()

    assert (stats.blobs_rewritten, stats.blobs_skipped) == (1, 1)
    with pytest.raises(NotFound):
        await store.tenant("acme").get("gone")
    await assert_reads(store, "acme", {"kept": OLD["random"]})
    await assert_clean_after_grace(store, clock)


async def test_a_delete_without_gc_racing_compact_still_switches_and_gc_reclaims_both_objects(
    store: BlobStore, clock: FakeClock
) -> None:
    await put_raw(store, "acme", {"gone": OLD["text"]})
    between_write_and_switch(store, OLD["text"], lambda: store.tenant("acme").delete("gone"))

    assert (await store.compact()).blobs_rewritten == 1

    await assert_clean_after_grace(store, clock)
    assert await data_objects(store) == []
    assert await scalar(store, "SELECT count(*) FROM blobs") == 0


async def test_a_put_dedup_hitting_the_blob_being_compacted_counts_its_reference(
    store: BlobStore, clock: FakeClock
) -> None:
    await put_raw(store, "acme", {"text": OLD["text"]})

    async def put_same_bytes() -> None:
        await store.tenant("globex").put("copy", OLD["text"])

    between_write_and_switch(store, OLD["text"], put_same_bytes)
    assert (await store.compact()).blobs_rewritten == 1

    assert await scalar(store, "SELECT refcount FROM blobs WHERE state = 'live'") == 2
    assert await scalar(store, "SELECT count(*) FROM blobs WHERE state = 'live'") == 1
    await assert_reads(store, "acme", {"text": OLD["text"]})
    await assert_reads(store, "globex", {"copy": OLD["text"]})
    await assert_clean_after_grace(store, clock)
    await store.tenant("acme").delete("text")
    await assert_reads(store, "globex", {"copy": OLD["text"]})


async def test_two_compact_runs_racing_deletes_puts_and_gc_lose_nothing_and_leak_nothing(
    open_store: StoreFactory, deployment: str, clock: FakeClock
) -> None:
    """Three handles on one deployment, as three processes: two compact runs, and deletes, dedup-hitting puts
    and GC, all at once; every key reads back as it should, each blob is rewritten once, nothing is left over."""
    first, second, other = [await open_store(deployment) for _ in range(3)]
    values = {f"k{n:02d}": TEXT[n * 997 : n * 997 + 30_000] + b"%d" % n for n in range(24)}
    await put_raw(first, "acme", values)
    deleted, copied = list(values)[:8], list(values)[8:16]

    async def churn() -> None:
        for key in deleted:
            await other.tenant("acme").delete(key)
        for key in copied:
            await other.tenant("globex").put(key, values[key])
        await other.gc()

    runs = await asyncio.gather(first.compact(), second.compact(), churn())

    rewritten = runs[0].blobs_rewritten + runs[1].blobs_rewritten
    assert rewritten + runs[0].blobs_skipped + runs[1].blobs_skipped >= len(values)
    assert runs[0].failures == runs[1].failures == []
    assert (await other.compact()).blobs_rewritten == len(values) - rewritten
    assert await unframed(other) == 0
    kept = {key: data for key, data in values.items() if key not in deleted}
    await assert_reads(other, "acme", kept)
    await assert_reads(other, "globex", {key: values[key] for key in copied})
    for key in deleted:
        with pytest.raises(NotFound):
            await other.tenant("acme").get(key)
    await assert_clean_after_grace(other, clock)
    await assert_reads(other, "acme", kept)
    assert len(await data_objects(other)) == len(kept)


async def test_a_compact_stalled_past_its_lease_skips_the_blob_and_a_rerun_takes_it(
    store: BlobStore, clock: FakeClock
) -> None:
    await put_raw(store, "acme", {"text": OLD["text"]})
    old_key = await object_key_of(store, "acme", "text")

    async def stall_and_collect() -> None:
        clock.advance(GRACE + 60)  # far past compact's upload lease
        await store.gc()  # reclaims the upload and the object just written

    between_write_and_switch(store, OLD["text"], stall_and_collect)
    stats = await store.compact()

    assert (stats.blobs_rewritten, stats.blobs_skipped, stats.failures) == (0, 1, [])
    assert await object_key_of(store, "acme", "text") == old_key
    assert await data_objects(store) == [old_key]
    assert (await store.compact()).blobs_rewritten == 1
    await assert_clean_after_grace(store, clock)
    await assert_reads(store, "acme", {"text": OLD["text"]})


@pytest.mark.parametrize("dry_run", [False, True])
async def test_a_blob_deleted_and_reclaimed_before_compact_reads_it_is_skipped(
    open_store: StoreFactory, deployment: str, clock: FakeClock, dry_run: bool
) -> None:
    store = await open_store(deployment, gc_grace_seconds=10.0)  # shorter than compact's upload lease
    await put_raw(store, "acme", {"gone": OLD["text"], "kept": OLD["random"]})
    storage = store.core.storage
    real = storage.read
    gone_key = await object_key_of(store, "acme", "gone")

    def read(key: str, byte_range: tuple[int, int] | None = None) -> Any:
        async def deleted_first() -> AsyncIterator[bytes]:
            if key == gone_key:  # compact listed the blob; it is deleted and reclaimed before the read
                await store.tenant("acme").delete("gone")
                clock.advance(20)
                await store.gc()
            async for chunk in real(key, byte_range):
                yield chunk

        return deleted_first()

    storage.read = read  # type: ignore[method-assign]
    stats = await store.compact(dry_run=dry_run)

    assert (stats.blobs_rewritten, stats.blobs_skipped, stats.failures) == (1, 1, [])
    storage.read = real  # type: ignore[method-assign]
    await assert_reads(store, "acme", {"kept": OLD["random"]})


async def test_a_blob_over_8_mib_is_rewritten_through_a_temporary_file_that_is_removed(
    store: BlobStore, clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    temporary = tmp_path / "temporary"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))  # where the run's temporary files go
    big = (TEXT * 4)[: ENCODE_IN_MEMORY + 3 * FRAME_SIZE + 11]
    await put_raw(store, "acme", {"big": big})

    estimate = await store.compact(dry_run=True)
    stats = await store.compact()

    assert stats.blobs_rewritten == estimate.blobs_rewritten == 1
    assert stats.bytes_after == estimate.bytes_after < len(big) // 3
    assert list(temporary.iterdir()) == []
    await assert_reads(store, "acme", {"big": big})
    await assert_clean_after_grace(store, clock)


async def test_with_compression_off_compact_frames_blobs_raw_and_ranged_reads_are_verified(
    open_store: StoreFactory, deployment: str, clock: FakeClock
) -> None:
    store = await open_store(deployment, compression="off")
    await put_raw(store, "acme", {"text": OLD["text"]})

    stats = await store.compact()

    assert (stats.blobs_rewritten, stats.bytes_before, stats.bytes_after) == (1, len(OLD["text"]), len(OLD["text"]))
    assert await unframed(store) == 0
    object_key = await object_key_of(store, "acme", "text")
    assert await read_all(store.storage, object_key) == OLD["text"]
    damaged = bytearray(OLD["text"])
    damaged[FRAME_SIZE + 5] ^= 0xFF
    await store.storage.write(object_key, bytes(damaged))
    async with store.tenant("acme").open("text", (0, 99)) as stream:
        assert await stream.read() == OLD["text"][:100]
    with pytest.raises(IntegrityError):
        async with store.tenant("acme").open("text", (FRAME_SIZE, FRAME_SIZE + 9)) as stream:
            await stream.read()
