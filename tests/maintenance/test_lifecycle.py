"""Lifecycle expiry: rules by prefix, a put's own expiry, and the run that deletes expired keys as ordinary
deletes, on SQLite + local directory and PostgreSQL + S3, with the store's clock moved by hand."""

from __future__ import annotations

from functools import partial

import pytest

from blobstore import BlobStore, InvalidInput, InvalidKey, InvalidTenant, NotFound
from blobstore.maintenance import lifecycle
from blobstore.model.lifecycle import Rule
from blobstore.store import PutItem
from tests.support.live_server import Connect
from tests.support.stores import FakeClock
from tests.support.workers import check_invariants, data_objects, scalar

DAY = 86400


async def keys_of(store: BlobStore, tenant: str) -> list[str]:
    return [info.key for info in (await store.tenant(tenant).list()).items]


async def test_a_rule_expires_exactly_its_tenants_keys_under_its_prefix(store: BlobStore, clock: FakeClock) -> None:
    acme, other = store.tenant("acme"), store.tenant("other")
    for key in ("tmp/a", "tmp/b", "keep/c", "tmpx"):
        await acme.put(key, key.encode())
        await other.put(key, key.encode())
    await store.set_lifecycle_rule("acme", "tmp/", expire_after=7 * DAY)

    clock.advance(7 * DAY - 1)
    assert (await store.expire()).keys == 0
    clock.advance(1)
    stats = await store.expire()

    assert (stats.keys, stats.bytes, stats.tenants["acme"].keys) == (2, 10, 2)
    assert list(stats.tenants) == ["acme"]
    assert await keys_of(store, "acme") == ["keep/c", "tmpx"]
    assert await keys_of(store, "other") == ["keep/c", "tmp/a", "tmp/b", "tmpx"]
    usage = await store.quota("acme")
    assert (usage.used_objects, usage.used_bytes) == (2, 10)
    await check_invariants(store)


async def test_the_longest_matching_prefix_decides(store: BlobStore, clock: FakeClock) -> None:
    acme = store.tenant("acme")
    await acme.put("tmp/a", b"a")
    await acme.put("tmp/keep/b", b"b")
    await store.set_lifecycle_rule("acme", "tmp/", expire_after=DAY)
    await store.set_lifecycle_rule("acme", "tmp/keep/", expire_after=30 * DAY)

    clock.advance(2 * DAY)
    assert (await store.expire()).keys == 1
    assert await keys_of(store, "acme") == ["tmp/keep/b"]
    clock.advance(30 * DAY)
    assert (await store.expire()).keys == 1
    assert await keys_of(store, "acme") == []


async def test_a_shared_blob_stays_while_another_reference_lives(store: BlobStore, clock: FakeClock) -> None:
    acme, other = store.tenant("acme"), store.tenant("other")
    await acme.put("tmp/a", b"shared bytes")
    await acme.put("keep/a", b"shared bytes")
    await other.put("tmp/a", b"shared bytes")
    await store.set_lifecycle_rule("acme", "tmp/", expire_after=DAY)
    clock.advance(2 * DAY)

    assert (await store.expire()).keys == 1
    clock.advance_past_real_time(store.settings.gc_grace_seconds + 1)
    await store.gc()

    assert await acme.get("keep/a") == b"shared bytes"
    assert await other.get("tmp/a") == b"shared bytes"
    assert len(await data_objects(store)) == 1
    await check_invariants(store)


async def test_expired_bytes_go_once_gc_finds_them_unreferenced(store: BlobStore, clock: FakeClock) -> None:
    await store.tenant("acme").put("tmp/a", b"only here")
    await store.set_lifecycle_rule("acme", "tmp/", expire_after=60)
    clock.advance(61)
    await store.expire()
    clock.advance_past_real_time(store.settings.gc_grace_seconds + 1)

    assert (await store.gc()).blobs_reclaimed == 1
    assert await data_objects(store) == []


async def test_a_dry_run_changes_nothing(store: BlobStore, clock: FakeClock) -> None:
    acme = store.tenant("acme")
    await acme.put("tmp/a", b"aa")
    await acme.put("own", b"bbb", expires_in=10)
    await store.set_lifecycle_rule("acme", "tmp/", expire_after=10)
    clock.advance(11)

    stats = await store.expire(dry_run=True)

    assert (stats.dry_run, stats.keys, stats.bytes) == (True, 2, 5)
    assert await keys_of(store, "acme") == ["own", "tmp/a"]
    assert (await store.quota("acme")).used_objects == 2
    assert (await store.expire()).keys == 2


async def test_batches_bound_each_transaction(store: BlobStore, clock: FakeClock) -> None:
    acme = store.tenant("acme")
    await acme.put_many([PutItem(f"tmp/{n:02}", b"x") for n in range(25)])
    await acme.put("tmp/young", b"y")
    await store.set_lifecycle_rule("acme", "tmp/", expire_after=100)
    clock.advance(50)
    await acme.put("tmp/young", b"y")  # written again: its age starts over
    clock.advance(60)

    stats = await store.expire(batch=10)

    assert (stats.keys, stats.batches) == (25, 3)
    assert await keys_of(store, "acme") == ["tmp/young"]


async def test_a_put_with_expires_in_expires_by_itself(store: BlobStore, connect: Connect, clock: FakeClock) -> None:
    acme = await connect(store, "acme")
    await acme.put("a", b"short-lived", expires_in=3600)
    await acme.put("b", b"kept")
    await acme.put_many([PutItem("c", b"batched", expires_in=7200)])

    clock.advance(3600)
    assert (await store.expire()).keys == 1
    assert sorted(await keys_of(store, "acme")) == ["b", "c"]
    clock.advance(3600)
    assert (await store.expire()).keys == 1
    assert await keys_of(store, "acme") == ["b"]


async def test_an_overwrite_resets_the_age_and_clears_its_own_expiry(store: BlobStore, clock: FakeClock) -> None:
    acme = store.tenant("acme")
    await acme.put("tmp/a", b"v1", expires_in=60)
    await store.set_lifecycle_rule("acme", "tmp/", expire_after=DAY)
    clock.advance(DAY - 10)
    await acme.put("tmp/a", b"v2")
    clock.advance(20)

    assert (await store.expire()).keys == 0
    assert await acme.get("tmp/a") == b"v2"
    assert await scalar(store, "SELECT expires_at FROM refs") is None


async def test_rules_are_listed_replaced_and_removed(store: BlobStore) -> None:
    await store.set_lifecycle_rule("acme", "tmp/", expire_after=DAY)
    await store.set_lifecycle_rule("acme", "tmp/", expire_after=2 * DAY)
    await store.set_lifecycle_rule("beta", "", expire_after=60)

    assert await store.lifecycle_rules() == [Rule("acme", "tmp/", 2 * DAY), Rule("beta", "", 60)]
    assert await store.lifecycle_rules("beta") == [Rule("beta", "", 60)]
    assert await store.remove_lifecycle_rule("acme", "tmp/") is True
    assert await store.remove_lifecycle_rule("acme", "tmp/") is False
    assert await store.remove_lifecycle_rule("nobody", "tmp/") is False
    assert await store.lifecycle_rules() == [Rule("beta", "", 60)]


@pytest.mark.parametrize("expire_after", [0, -5, 1.5, True, "7d", 10**12])
async def test_a_bad_expire_after_is_refused(store: BlobStore, expire_after: object) -> None:
    with pytest.raises(InvalidInput, match="expire_after"):
        await store.set_lifecycle_rule("acme", "tmp/", expire_after=expire_after)  # type: ignore[arg-type]
    assert await store.lifecycle_rules() == []


async def test_a_bad_tenant_or_prefix_is_refused(store: BlobStore) -> None:
    with pytest.raises(InvalidTenant):
        await store.set_lifecycle_rule("Bad Name", "tmp/", expire_after=60)
    with pytest.raises(InvalidKey):
        await store.set_lifecycle_rule("acme", "tmp/\x00", expire_after=60)
    with pytest.raises(InvalidInput, match="batch"):
        await store.expire(batch=0)
    assert await store.lifecycle_rules() == []


@pytest.mark.parametrize("expires_in", [0, -1, 2.5, True, "60"])
async def test_a_bad_expires_in_stores_nothing(store: BlobStore, connect: Connect, expires_in: object) -> None:
    acme = await connect(store, "acme")
    with pytest.raises(InvalidInput, match="expires_in"):
        await acme.put("a", b"x", expires_in=expires_in)  # type: ignore[arg-type]
    with pytest.raises(NotFound):
        await acme.stat("a")


async def test_a_key_written_again_after_the_scan_is_kept(store: BlobStore, clock: FakeClock) -> None:
    """The transaction that deletes a batch reads its keys again under the tenant's lock: a key found expired by
    the scan but written again since is younger, and stays (as does a key whose rule went meanwhile)."""
    acme = store.tenant("acme")
    await acme.put("tmp/rewritten", b"old")
    await acme.put("logs/ruled", b"old")
    await store.set_lifecycle_rule("acme", "tmp/", expire_after=60)
    await store.set_lifecycle_rule("acme", "logs/", expire_after=60)
    clock.advance(61)
    scanned = (await store.expire(dry_run=True)).keys
    await acme.put("tmp/rewritten", b"new")
    await store.remove_lifecycle_rule("acme", "logs/")

    deleted = await store.database.transaction(
        partial(lifecycle._delete_expired, tenant="acme", keys=["tmp/rewritten", "logs/ruled"], now=clock())
    )

    assert (scanned, deleted) == (2, [])
    assert await keys_of(store, "acme") == ["logs/ruled", "tmp/rewritten"]
