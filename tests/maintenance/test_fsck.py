"""fsck: finds every disagreement between the database and object storage, and repairs what it safely can.

Damage is injected behind the store's back: counters through SQL, objects
through ``store.storage``. Every test runs on SQLite + local directory and on
PostgreSQL + S3.
"""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import text

from blobstore import BlobStore, IntegrityError
from blobstore.maintenance import fsck as fsck_module
from blobstore.maintenance.fsck import FsckReport
from blobstore.storage import read_all
from blobstore.storage.layout import object_key_for
from tests.support.stores import FakeClock
from tests.support.workers import data_objects, invariant_violations, object_key_of, scalar

GRACE = 3600.0


async def execute(store: BlobStore, sql: str, **params: object) -> None:
    """Change the database behind the store's back."""
    async with store.database.engine.begin() as conn:
        await conn.execute(text(sql), params)


def kinds(report: FsckReport) -> list[str]:
    return sorted(problem.kind for problem in report.problems)


async def populate(store: BlobStore) -> dict[tuple[str, str], bytes]:
    """Two tenants, shared and private bytes, a copy; returns what each key holds."""
    values = {
        ("acme", "a"): b"shared bytes",
        ("acme", "b"): b"acme only",
        ("globex", "a"): b"shared bytes",
        ("globex", "big"): bytes(range(256)) * 5000,
    }
    for (tenant, key), data in values.items():
        await store.tenant(tenant).put(key, data)
    await store.tenant("acme").copy("b", "b-copy")
    values["acme", "b-copy"] = b"acme only"
    return values


async def test_a_clean_store_is_ok_and_every_object_is_checked(store: BlobStore) -> None:
    """On a consistent store fsck finds no problem, checks every blob and object, and hashes every byte."""
    values = await populate(store)
    report = await store.fsck(read_data=True)
    assert report.ok, report.problems
    assert report.problems == []
    assert report.blobs_checked == 3
    assert report.objects_checked == 3
    assert report.bytes_hashed == len(b"shared bytes") + len(b"acme only") + len(values["globex", "big"])
    assert (await store.fsck()).bytes_hashed == 0


async def test_refcount_drift_is_reported_and_repaired(store: BlobStore) -> None:
    """A reference count that disagrees with the references is reported; --repair recounts it."""
    await populate(store)
    blob = await scalar(store, "SELECT blob_id FROM refs WHERE key = 'b'")
    await execute(store, "UPDATE blobs SET refcount = refcount + 5 WHERE id = :id", id=blob)

    found = await store.fsck()
    assert not found.ok
    assert kinds(found) == ["refcount-drift"]
    assert found.problems[0].detail == "refcount 7, but 2 references"
    assert await scalar(store, "SELECT refcount FROM blobs WHERE id = :id", id=blob) == 7

    repaired = await store.fsck(repair=True)
    assert repaired.ok
    assert [(p.kind, p.repaired) for p in repaired.problems] == [("refcount-drift", True)]
    assert await scalar(store, "SELECT refcount FROM blobs WHERE id = :id", id=blob) == 2
    assert (await store.fsck()).problems == []
    assert await invariant_violations(store) == []


async def test_a_refcount_drifted_to_zero_never_lets_gc_delete_referenced_bytes(
    store: BlobStore, clock: FakeClock
) -> None:
    """Even with its count wrongly at 0 past grace, a referenced blob is not reclaimed; repair restores the count."""
    await populate(store)
    blob = await scalar(store, "SELECT blob_id FROM refs WHERE key = 'b'")
    await execute(store, "UPDATE blobs SET refcount = 0, unreferenced_since = created_at WHERE id = :id", id=blob)
    clock.advance(GRACE * 2)
    assert (await store.gc()).blobs_reclaimed == 0
    assert await store.tenant("acme").get("b-copy") == b"acme only"
    report = await store.fsck(repair=True)
    assert kinds(report) == ["refcount-drift"]
    assert await scalar(store, "SELECT refcount FROM blobs WHERE id = :id", id=blob) == 2
    assert await invariant_violations(store) == []


async def test_usage_drift_is_reported_and_repaired(store: BlobStore) -> None:
    """Tenant usage counters that disagree with the sums over its references are reported and recounted."""
    await populate(store)
    await execute(store, "UPDATE tenants SET used_bytes = used_bytes + 1000, used_objects = 0 WHERE name = 'acme'")

    found = await store.fsck()
    assert kinds(found) == ["usage-drift"]
    assert found.problems[0].subject == "tenant acme"
    assert not found.ok

    repaired = await store.fsck(repair=True)
    assert repaired.ok
    expected_bytes = len(b"shared bytes") + 2 * len(b"acme only")
    assert await scalar(store, "SELECT used_bytes FROM tenants WHERE name = 'acme'") == expected_bytes
    assert await scalar(store, "SELECT used_objects FROM tenants WHERE name = 'acme'") == 3
    assert (await store.fsck()).problems == []


async def test_a_missing_object_is_reported_and_never_papered_over(store: BlobStore) -> None:
    """A missing object is reported (ok False), not repaired, and reading its key raises IntegrityError."""
    await populate(store)
    object_key = await object_key_of(store, "acme", "b")
    await store.storage.delete_many([object_key])

    report = await store.fsck()
    assert not report.ok
    assert [(p.kind, p.subject) for p in report.problems] == [("missing-object", object_key)]
    with_data = await store.fsck(read_data=True)
    assert kinds(with_data) == ["missing-object"]
    repaired = await store.fsck(repair=True)
    assert not repaired.ok
    assert [(p.kind, p.repaired) for p in repaired.problems] == [("missing-object", False)]
    with pytest.raises(IntegrityError, match="missing"):
        await store.tenant("acme").get("b")
    assert await store.tenant("globex").get("a") == b"shared bytes"


async def test_a_corrupted_object_of_the_right_size_is_found_only_by_reading_the_data(store: BlobStore) -> None:
    """Same-size wrong bytes are found only by read_data (corrupted-object); get raises IntegrityError."""
    await populate(store)
    object_key = await object_key_of(store, "globex", "big")
    damaged = bytearray(await read_all(store.storage, object_key))
    damaged[len(damaged) // 2] ^= 0xFF
    await store.storage.write(object_key, bytes(damaged))

    assert (await store.fsck()).ok
    report = await store.fsck(read_data=True)
    assert not report.ok
    assert [(p.kind, p.subject) for p in report.problems] == [("corrupted-object", object_key)]
    assert re.search(r"frame [01] \(bytes (0-1048575|1048576-1279999)\)", report.problems[0].detail)
    with pytest.raises(IntegrityError, match="corrupted"):
        await store.tenant("globex").get("big")
    assert await store.tenant("acme").get("a") == b"shared bytes"


async def test_an_object_of_the_wrong_size_is_reported(store: BlobStore) -> None:
    """A truncated object is a size-mismatch problem even without reading the data."""
    await populate(store)
    object_key = await object_key_of(store, "acme", "b")
    await store.storage.write(object_key, b"acme")
    report = await store.fsck()
    assert [(p.kind, p.subject) for p in report.problems] == [("size-mismatch", object_key)]
    assert not report.ok


async def test_a_reference_to_a_blob_that_is_not_live_is_reported(store: BlobStore) -> None:
    """A reference whose blob was tombstoned (which the protocol never allows) is a dangling-reference."""
    await populate(store)
    blob = await scalar(store, "SELECT blob_id FROM refs WHERE key = 'b'")
    await execute(store, "UPDATE blobs SET state = 'deleting' WHERE id = :id", id=blob)
    report = await store.fsck()
    assert kinds(report) == ["dangling-reference", "dangling-reference"]
    assert {p.subject for p in report.problems} == {"acme/b", "acme/b-copy"}


async def test_an_orphan_object_is_reported_past_grace_and_repair_deletes_it(
    store: BlobStore, clock: FakeClock
) -> None:
    """An object no row accounts for is reported once past grace (not before) and deleted by repair."""
    await populate(store)
    orphan = object_key_for("ab" * 32)
    await store.storage.write(orphan, b"left behind")
    assert (await store.fsck()).problems == []

    clock.advance(GRACE + 60)
    report = await store.fsck()
    assert [(p.kind, p.subject, p.repaired) for p in report.problems] == [("orphan-object", orphan, False)]
    assert not report.ok
    assert await store.storage.stat(orphan) is not None

    repaired = await store.fsck(repair=True)
    assert repaired.ok
    assert [(p.kind, p.repaired) for p in repaired.problems] == [("orphan-object", True)]
    assert await store.storage.stat(orphan) is None
    assert (await store.fsck(read_data=True)).problems == []
    assert len(await data_objects(store)) == 3


async def test_reclaimable_blobs_past_grace_are_reported_and_repair_reclaims_them(
    store: BlobStore, clock: FakeClock
) -> None:
    """An unreferenced blob past grace is reported as reclaimable-blob, and repair reclaims it through GC."""
    await populate(store)
    await store.tenant("acme").delete("b")
    await store.tenant("acme").delete("b-copy")
    assert (await store.fsck()).ok
    clock.advance(GRACE + 1)
    report = await store.fsck()
    assert [(p.kind, p.detail) for p in report.problems] == [("reclaimable-blob", "unreferenced, past grace")]
    assert (await store.fsck(repair=True)).ok
    assert len(await data_objects(store)) == 2
    assert await invariant_violations(store) == []


async def test_the_report_serialises_to_json(store: BlobStore) -> None:
    """FsckReport.to_dict is plain JSON, with ok and every problem."""
    await populate(store)
    await execute(store, "UPDATE blobs SET refcount = 9")
    await store.storage.delete_many([await object_key_of(store, "acme", "b")])
    report = await store.fsck(read_data=True)
    loaded = json.loads(json.dumps(report.to_dict()))
    assert loaded["ok"] is False
    assert loaded["blobs_checked"] == 3
    assert sorted(p["kind"] for p in loaded["problems"]) == ["missing-object"] + ["refcount-drift"] * 3
    assert all(set(p) == {"kind", "subject", "detail", "repaired"} for p in loaded["problems"])


async def test_a_report_lists_a_bounded_number_of_problems_and_counts_them_all(
    store: BlobStore, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past LISTED_PROBLEMS, problems are counted by kind but not listed (memory stays bounded); ok still sees them."""
    monkeypatch.setattr(fsck_module, "LISTED_PROBLEMS", 3)
    for index in range(5):
        await store.storage.write(object_key_for(f"{index:064x}"), b"orphan")
    clock.advance_past_real_time(GRACE + 1)
    report = await store.fsck()
    assert len(report.problems) == 3
    assert report.problem_counts == {"orphan-object": 5}
    assert (report.unlisted, report.unrepaired, report.ok) == (2, 5, False)
    repaired = await store.fsck(repair=True)
    assert (repaired.problem_counts, repaired.unrepaired, repaired.ok) == ({"orphan-object": 5}, 0, True)
    assert await data_objects(store) == []
