"""Storage-class transitions: a blob cools only when every key holding it, in every tenant, is cold under a
rule and nobody read it for that long; it warms back when read or written again; a move killed half-way loses
nothing. On SQLite + local directory (the class is recorded, nothing moves) and PostgreSQL + S3 (moto's
server: the object's StorageClass is checked with HeadObject), with the store's clock moved by hand."""

from __future__ import annotations

import io
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from rich.console import Console

from blobstore import BlobStore, InvalidInput
from blobstore.accounting.report_formats import render_table
from blobstore.core.egress import READS_PER_STATEMENT
from blobstore.storage import S3Storage
from blobstore.storage.base import ObjectStorage
from blobstore.storage.timed import TimedStorage
from blobstore.store import PutItem
from tests.support.stores import FakeClock
from tests.support.workers import check_invariants, object_key_of, scalar

DAY = 86400


def s3_of(store: BlobStore) -> S3Storage | None:
    storage: ObjectStorage = store.storage
    while isinstance(storage, TimedStorage):
        storage = storage.inner
    return storage if isinstance(storage, S3Storage) else None


async def recorded_class(store: BlobStore, tenant: str, key: str) -> str:
    found = await scalar(
        store,
        "SELECT b.storage_class FROM refs r JOIN blobs b ON b.id = r.blob_id JOIN tenants t ON t.id = r.tenant_id "
        "WHERE t.name = :t AND r.key = :k",
        t=tenant,
        k=key,
    )
    return str(found or "STANDARD")


async def class_of(store: BlobStore, tenant: str, key: str) -> str:
    """The class the catalog records; on S3, checked against the object's own (HeadObject)."""
    recorded = await recorded_class(store, tenant, key)
    s3 = s3_of(store)
    if s3 is not None:
        client: Any = await s3._s3()
        head = await client.head_object(Bucket=s3.bucket, Key=s3._key(await object_key_of(store, tenant, key)))
        assert head.get("StorageClass", "STANDARD") == recorded
    return recorded


async def test_a_cold_blob_moves_and_warms_back_when_read(store: BlobStore, clock: FakeClock) -> None:
    acme = store.tenant("acme")
    await acme.put("logs/a", b"cold bytes")
    await acme.put("keep/b", b"other bytes")
    await store.set_lifecycle_rule("acme", "logs/", transition_after=30 * DAY, storage_class="STANDARD_IA")

    clock.advance(30 * DAY - 1)
    assert (await store.transition()).blobs == 0
    clock.advance(1)
    stats = await store.transition()

    assert (stats.blobs, stats.bytes, list(stats.classes)) == (1, len(b"cold bytes"), ["STANDARD_IA"])
    assert await class_of(store, "acme", "logs/a") == "STANDARD_IA"
    assert await class_of(store, "acme", "keep/b") == "STANDARD"
    assert await acme.get("logs/a") == b"cold bytes"  # a read warms it: back at the next run
    back = await store.transition()
    assert (back.blobs, list(back.classes)) == (1, ["STANDARD"])
    assert await class_of(store, "acme", "logs/a") == "STANDARD"
    clock.advance(30 * DAY)
    assert (await store.transition()).blobs == 0  # read on the day 30 days ago: counts until that day's end
    clock.advance(DAY)
    assert (await store.transition()).blobs == 1
    assert await class_of(store, "acme", "logs/a") == "STANDARD_IA"
    await check_invariants(store)


async def test_a_shared_blob_stays_while_another_tenants_reference_is_warm(store: BlobStore, clock: FakeClock) -> None:
    acme, other = store.tenant("acme"), store.tenant("other")
    await acme.put("logs/a", b"shared bytes")
    await other.put("x", b"shared bytes")
    await store.set_lifecycle_rule("acme", "logs/", transition_after=DAY, storage_class="GLACIER_IR")
    clock.advance(2 * DAY)
    assert (await store.transition()).blobs == 0  # other has no rule: its reference keeps it hot

    await store.set_lifecycle_rule("other", "", transition_after=10 * DAY, storage_class="STANDARD_IA")
    assert (await store.transition()).blobs == 0  # other's key is 2 days old
    clock.advance(8 * DAY)
    stats = await store.transition()
    assert list(stats.classes) == ["STANDARD_IA"]  # the warmest class the rules allow
    assert await class_of(store, "acme", "logs/a") == "STANDARD_IA"

    await other.put("y", b"shared bytes")  # a new key of the same bytes: young, so warm
    assert list((await store.transition()).classes) == ["STANDARD"]
    assert await class_of(store, "other", "x") == "STANDARD"


async def test_another_tenants_reads_keep_a_shared_blob_hot(store: BlobStore, clock: FakeClock) -> None:
    acme, other = store.tenant("acme"), store.tenant("other")
    await acme.put("logs/a", b"read by other")
    await other.put("logs/a", b"read by other")
    for tenant in ("acme", "other"):
        await store.set_lifecycle_rule(tenant, "logs/", transition_after=5 * DAY, storage_class="ONEZONE_IA")
    clock.advance(5 * DAY)
    assert await other.get("logs/a") == b"read by other"
    assert (await store.transition()).blobs == 0
    clock.advance(6 * DAY)
    assert (await store.transition()).blobs == 1
    assert await class_of(store, "acme", "logs/a") == "ONEZONE_IA"


async def test_dry_run_changes_nothing(store: BlobStore, clock: FakeClock) -> None:
    await store.tenant("acme").put("logs/a", b"cold")
    await store.set_lifecycle_rule("acme", "logs/", transition_after=DAY, storage_class="STANDARD_IA")
    clock.advance(DAY)
    stats = await store.transition(dry_run=True)
    assert (stats.dry_run, stats.blobs, list(stats.classes)) == (True, 1, ["STANDARD_IA"])
    assert await class_of(store, "acme", "logs/a") == "STANDARD"


class Killed(BaseException):
    """The process dies here."""


async def _transition_killed_before_recording(store: BlobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """A transition run that dies after copying the objects, before the catalog records their classes."""
    from blobstore.db import transitions as queries

    async def die(*_args: object, **_kwargs: object) -> bool:
        raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(queries, "record_class", die)
        with pytest.raises(Killed):
            await store.transition()


async def test_a_move_killed_before_the_catalog_switch_loses_nothing(
    store: BlobStore, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after the object was copied into its new class, before the catalog recorded it: the next run
    records the class, and the bytes read back."""
    acme = store.tenant("acme")
    await acme.put("logs/a", b"moved half-way")
    await store.set_lifecycle_rule("acme", "logs/", transition_after=DAY, storage_class="STANDARD_IA")
    clock.advance(DAY)
    await _transition_killed_before_recording(store, monkeypatch)

    assert await recorded_class(store, "acme", "logs/a") == "STANDARD"
    assert (await store.transition()).blobs == 1
    assert await class_of(store, "acme", "logs/a") == "STANDARD_IA"
    assert await acme.get("logs/a") == b"moved half-way"


async def test_a_move_killed_after_the_copy_is_redone_even_when_the_blob_warmed_meanwhile(
    store: BlobStore, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The object went to STANDARD_IA, the catalog still says STANDARD; the blob is read before the next run,
    so it belongs in STANDARD: the run sees the unfinished move and copies the object back."""
    acme = store.tenant("acme")
    await acme.put("logs/a", b"warmed meanwhile")
    await store.set_lifecycle_rule("acme", "logs/", transition_after=DAY, storage_class="STANDARD_IA")
    clock.advance(DAY)
    await _transition_killed_before_recording(store, monkeypatch)
    s3 = s3_of(store)
    if s3 is not None:  # the copy happened: the object is in the new class, the catalog does not know yet
        client: Any = await s3._s3()
        head = await client.head_object(Bucket=s3.bucket, Key=s3._key(await object_key_of(store, "acme", "logs/a")))
        assert head["StorageClass"] == "STANDARD_IA"
    assert await acme.get("logs/a") == b"warmed meanwhile"

    stats = await store.transition()
    assert (stats.blobs, list(stats.classes)) == (1, ["STANDARD"])
    assert await class_of(store, "acme", "logs/a") == "STANDARD"  # on S3: HeadObject agrees
    assert (await store.transition()).blobs == 0
    await check_invariants(store)


async def test_only_classes_read_without_a_restore_are_accepted(store: BlobStore) -> None:
    for bad in ("GLACIER", "DEEP_ARCHIVE", "STANDARD", "standard_ia", ""):
        with pytest.raises(InvalidInput, match="storage class must be one of"):
            await store.set_lifecycle_rule("acme", "logs/", transition_after=DAY, storage_class=bad)
    with pytest.raises(InvalidInput, match="go together"):
        await store.set_lifecycle_rule("acme", "logs/", transition_after=DAY)
    assert await store.lifecycle_rules() == []


async def test_a_rule_keeps_its_expiry_when_a_transition_is_added(store: BlobStore) -> None:
    await store.set_lifecycle_rule("acme", "logs/", expire_after=90 * DAY)
    rule = await store.set_lifecycle_rule("acme", "logs/", transition_after=30 * DAY, storage_class="GLACIER_IR")
    assert (rule.expire_after, rule.transition_after, rule.storage_class) == (90 * DAY, 30 * DAY, "GLACIER_IR")


async def test_the_cost_report_prices_each_class_at_its_own_rate(store: BlobStore, clock: FakeClock) -> None:
    """Two tenants share a blob moved to STANDARD_IA; another blob stays in STANDARD: bytes per class are
    attributed as compressed bytes are, and each class is priced at the preset's rate for it."""
    acme, other = store.tenant("acme"), store.tenant("other")
    await acme.put("logs/a", b"x" * 3000)
    await other.put("logs/a", b"x" * 3000)
    await acme.put("hot", b"y" * 1000)
    for tenant in ("acme", "other"):
        await store.set_lifecycle_rule(tenant, "logs/", transition_after=DAY, storage_class="STANDARD_IA")
    clock.advance(DAY)
    await store.transition()

    report = await store.report(pricing="aws-s3-standard")
    acme_row, other_row = report.tenants
    assert sum(acme_row.class_bytes.values()) == acme_row.compressed_bytes
    assert other_row.class_bytes == {"STANDARD_IA": other_row.compressed_bytes}
    assert set(acme_row.class_bytes) == {"STANDARD", "STANDARD_IA"}
    assert report.total.class_bytes == {
        name: acme_row.class_bytes.get(name, 0) + other_row.class_bytes.get(name, 0)
        for name in ("STANDARD", "STANDARD_IA")
    }
    ia, standard = report.total.class_bytes["STANDARD_IA"], report.total.class_bytes["STANDARD"]
    expected = (Decimal(ia) * Decimal("0.0125") + Decimal(standard) * Decimal("0.023")) / 10**9
    assert report.total.storage_cost == expected
    assert report.to_dict()["pricing"]["storage_class_prices"]["GLACIER_IR"] == "0.004"
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(render_table(report, exact=True))
    shown = " ".join(console.file.getvalue().split())  # type: ignore[attr-defined]
    assert f"By storage class (compressed, per GB-month): STANDARD {standard:,} bytes at $0.023" in shown
    assert f"STANDARD_IA {ia:,} bytes at $0.0125" in shown


async def test_a_read_records_its_day_once(store: BlobStore, clock: FakeClock) -> None:
    """The read path records the UTC day (midnight) of a blob's latest read; later reads that day change
    nothing, a read on a later day moves it on."""
    acme = store.tenant("acme")
    await acme.put("a", b"read me")
    query = "SELECT b.last_read_at FROM blobs b JOIN refs r ON r.blob_id = b.id WHERE r.key = 'a'"
    assert await scalar(store, query) is None
    await acme.get("a")
    await store.core.egress.flush()
    midnight = clock().replace(hour=0, minute=0, second=0, microsecond=0)
    first = await scalar(store, query)
    assert str(first)[:10] == midnight.date().isoformat()
    clock.advance(DAY)
    await acme.get("a")
    await store.core.egress.flush()
    assert str(await scalar(store, query))[:10] == (midnight.date() + timedelta(days=1)).isoformat()


async def test_removing_the_rule_moves_cooled_blobs_back(store: BlobStore, clock: FakeClock) -> None:
    await store.tenant("acme").put("logs/a", b"cold")
    await store.set_lifecycle_rule("acme", "logs/", transition_after=DAY, storage_class="GLACIER_IR")
    clock.advance(DAY)
    assert (await store.transition()).blobs == 1
    assert await store.remove_lifecycle_rule("acme", "logs/")
    assert list((await store.transition()).classes) == ["STANDARD"]
    assert await class_of(store, "acme", "logs/a") == "STANDARD"


async def test_many_reads_in_one_flush_all_record_their_day(store: BlobStore, clock: FakeClock) -> None:
    """More blobs read within one flush than one UPDATE names: every one is recorded."""
    acme = store.tenant("acme")
    count = READS_PER_STATEMENT + 20
    await acme.put_many([PutItem(f"k{n}", b"%d" % n) for n in range(count)])
    for n in range(count):
        await acme.get(f"k{n}")
    await store.core.egress.flush()
    assert await scalar(store, "SELECT count(*) FROM blobs WHERE last_read_at IS NOT NULL") == count
