"""Where blob objects lie: one level of fan-out for new objects, and the two-level objects of older stores."""

from __future__ import annotations

import secrets
from pathlib import Path

from sqlalchemy import text

from blobstore import BlobStore
from blobstore.storage.base import read_all
from blobstore.storage.layout import FANOUT_PREFIXES, is_object_key, object_key_for
from tests.support.stores import FakeClock, StoreFactory
from tests.support.workers import data_objects

GRACE = 3600.0


def two_level_key(digest: str) -> str:
    """A key in the shape stores wrote before the one-level fan-out: ``data/ab/cd/<digest>.<token>``."""
    return f"data/{digest[:2]}/{digest[2:4]}/{digest}.{secrets.token_hex(16)}"


def test_new_keys_fan_out_by_two_digits_and_the_older_two_level_keys_stay_the_stores_own() -> None:
    digest = secrets.token_hex(32)
    key = object_key_for(digest)

    assert key.startswith(f"data/{digest[:2]}/{digest}.")
    assert is_object_key(key)
    assert is_object_key(two_level_key(digest))
    assert not is_object_key(f"data/{digest[2:4]}/{digest}.{'0' * 32}")  # fanned out by the wrong digits
    assert not is_object_key(f"data/{digest[:2]}/{digest[2:4]}/{digest[:63]}.{'0' * 32}")


async def test_a_new_local_store_has_every_fanout_directory_before_its_first_put(open_store: StoreFactory) -> None:
    store = await open_store("sqlite-local")
    root = Path(store.storage.url.removeprefix("file://"))
    directories = {path for path in (root / "data").iterdir() if path.is_dir()}

    assert directories == {root / prefix.rstrip("/") for prefix in FANOUT_PREFIXES}
    await store.tenant("acme").put("k", b"bytes")
    [key] = await data_objects(store)
    assert (root / key).parent in directories
    assert set((root / "data").iterdir()) == directories  # the put created no directory


async def move_to_two_level_key(store: BlobStore, digest: str) -> str:
    """Move the object of ``digest``'s blob to a two-level key, as an older store wrote it; the new key."""
    [old] = [key for key in await data_objects(store) if digest in key]
    moved = two_level_key(digest)
    await store.storage.write(moved, await read_all(store.storage, old))
    async with store.database.engine.begin() as conn:
        moving = text("UPDATE blobs SET object_key = :moved WHERE object_key = :old")
        await conn.execute(moving, {"moved": moved, "old": old})
    await store.storage.delete_many([old])
    return moved


async def test_objects_of_the_older_layout_are_read_checked_and_reclaimed_where_they_lie(
    store: BlobStore, clock: FakeClock
) -> None:
    acme = store.tenant("acme")
    info = await acme.put("old", b"stored before the one-level fan-out" * 100)
    moved = await move_to_two_level_key(store, info.digest)
    orphan = two_level_key(secrets.token_hex(32))
    await store.storage.write(orphan, b"an object no row names")

    assert await acme.get("old") == b"stored before the one-level fan-out" * 100
    async with acme.open("old", byte_range=(3500, 3599)) as stream:
        assert await stream.read() == (b"stored before the one-level fan-out" * 100)[3500:3600]
    assert (await store.fsck(read_data=True)).ok
    clock.advance(GRACE * 2)
    report = await store.fsck(read_data=True)
    assert report.foreign_objects == 0
    assert [(problem.kind, problem.subject) for problem in report.problems] == [("orphan-object", orphan)]

    await acme.delete("old")
    clock.advance(GRACE * 2)
    stats = await store.gc()

    assert (stats.blobs_reclaimed, stats.orphans_deleted) == (1, 1)
    assert await data_objects(store) == []
    assert moved not in [info.key async for info in store.storage.list("data/")]
