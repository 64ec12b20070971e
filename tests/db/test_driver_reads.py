"""The per-request lookups on the driver connection (blobstore.db.driver_reads) read what the SQLAlchemy queries
they stand in for read, on every deployment: times as aware UTC datetimes, absent rows as None."""

from __future__ import annotations

from datetime import timedelta

import pytest

from blobstore import BlobStore, buckets
from blobstore.accounting import quotas
from blobstore.auth import access_keys
from blobstore.db import access_keys as access_keys_db
from blobstore.db import buckets as buckets_db
from blobstore.db import driver_reads, s3_facts
from blobstore.db.engine import Driver
from blobstore.model.s3_facts import S3Facts
from tests.support.workers import rows


async def test_an_access_key_lookup_reads_the_row_find_reads(store: BlobStore) -> None:
    lasting = await access_keys.create(store.core, "acme", scopes=["read"], expires_in=timedelta(days=2))
    revoked = await access_keys.create(store.core, "acme", scopes=["read", "write"], name="old")
    await access_keys.revoke(store.core, revoked.info.id)

    for key_id in (lasting.info.id, revoked.info.id):
        expected = await store.database.read(lambda conn, key_id=key_id: access_keys_db.find_access_key(conn, key_id))
        found = await access_keys_db.lookup_access_key(store.database, key_id)
        assert found is not None
        assert found.row == expected
    assert await access_keys_db.lookup_access_key(store.database, "AKBS0000000000000000") is None
    found = await access_keys_db.lookup_access_key(store.database, revoked.info.id)
    assert found is not None
    assert found.row.revoked_at is not None
    assert found.row.revoked_at.tzinfo is not None


async def test_an_access_key_lookup_reads_its_tenants_bucket_alone(store: BlobStore) -> None:
    """With a bucket name: when the key's tenant created that bucket, as the bucket lookup reads it; None for a
    name the tenant has no bucket of, whoever else has one."""
    key = await access_keys.create(store.core, "acme")
    await buckets.create(store.core, "acme", "photos")
    await buckets.create(store.core, "other", "videos")

    created = await buckets_db.lookup_bucket(store.database, "acme", "photos")
    assert created is not None
    for bucket, expected in (("photos", created), ("videos", None), ("", None)):
        found = await access_keys_db.lookup_access_key(store.database, key.info.id, bucket)
        assert found is not None
        assert found.bucket_created_at == expected


async def test_an_access_key_lookup_reads_the_version_its_tenant_holds_at_a_key(store: BlobStore) -> None:
    """With a key: the digest, time and S3 facts (as blobstore.db.s3_facts.lookup reads them) of the tenant's
    version there; None for a key the tenant lacks, whoever else has it."""
    key = await access_keys.create(store.core, "acme")
    facts = S3Facts("0123456789abcdef0123456789abcdef", {"crc32": "AAAAAA==", "sha256": "a+b/c="})
    s3_put = await store.tenant("acme").put_with_headers("photos/s3", b"s3 bytes", headers={}, s3_facts=lambda: facts)
    native = await store.tenant("acme").put("photos/native", b"native bytes")
    await store.tenant("other").put("photos/theirs", b"s3 bytes")

    async def version_at(name: str) -> access_keys_db.KeyVersion | None:
        found = await access_keys_db.lookup_access_key(store.database, key.info.id, "photos", name)
        assert found is not None
        return found.version

    assert await version_at("photos/s3") == access_keys_db.KeyVersion(s3_put.digest, s3_put.created_at, facts)
    assert await s3_facts.lookup(store.database, "acme", s3_put.digest) == facts
    assert await version_at("photos/native") == access_keys_db.KeyVersion(native.digest, native.created_at, S3Facts())
    assert await version_at("photos/theirs") is None
    assert await version_at("photos/absent") is None


async def test_an_access_key_lookup_says_whether_its_tenant_has_a_quota(store: BlobStore) -> None:
    """No quota before the tenant has a row or a limit; one once either limit is set, none once both are cleared."""
    key = await access_keys.create(store.core, "acme")

    async def quota_set() -> bool:
        found = await access_keys_db.lookup_access_key(store.database, key.info.id)
        assert found is not None
        return found.quota_set

    assert not await quota_set()
    await store.tenant("acme").put("k", b"bytes")
    assert not await quota_set()
    await quotas.set_quota(store.core, "acme", max_objects=10)
    assert await quota_set()
    await quotas.set_quota(store.core, "acme", max_objects=None, max_bytes=1000)
    assert await quota_set()
    await quotas.set_quota(store.core, "acme", max_bytes=None)
    assert not await quota_set()


async def test_a_bucket_lookup_is_per_tenant(store: BlobStore) -> None:
    await buckets.create(store.core, "acme", "photos")

    created = await buckets_db.lookup_bucket(store.database, "acme", "photos")
    expected = await store.database.read(lambda conn: buckets_db.find_bucket(conn, "acme", "photos"))
    assert created == expected
    assert created is not None
    assert created.tzinfo is not None
    assert await buckets_db.lookup_bucket(store.database, "other", "photos") is None
    assert await buckets_db.lookup_bucket(store.database, "acme", "videos") is None


async def _put_with_facts(store: BlobStore, tenant: str, data: bytes, facts: S3Facts) -> str:
    """Put ``data`` with its S3 facts (as PutObject does); its digest."""
    return (
        await store.tenant(tenant).put_with_headers(f"k/{len(data)}", data, headers={}, s3_facts=lambda: facts)
    ).digest


async def test_md5s_are_looked_up_per_tenant_and_digest(store: BlobStore) -> None:
    first = await _put_with_facts(store, "acme", b"1", S3Facts("a" * 32))
    second = await _put_with_facts(store, "acme", b"22", S3Facts("b" * 32))
    third = await _put_with_facts(store, "other", b"333", S3Facts("c" * 32))

    found = await buckets_db.lookup_md5s(store.database, "acme", [first, second, third])
    assert found == {first: "a" * 32, second: "b" * 32}
    assert await buckets.etags(store.core, "acme", [third, first]) == {first: '"' + "a" * 32 + '"', third: f'"{third}"'}


def test_placeholders_are_numbered_for_asyncpg_in_order() -> None:
    sql = f"SELECT 1 FROM t WHERE a = ? AND b IN ({driver_reads.placeholders(3)})"
    assert driver_reads._numbered(sql) == "SELECT 1 FROM t WHERE a = $1 AND b IN ($2, $3, $4)"


async def test_an_objects_s3_facts_are_one_statement_per_tenant_and_digest(
    store: BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """:func:`buckets.facts` reads what was recorded (the MD5 and every checksum, the same as the SQLAlchemy rows
    say) in one driver statement; bytes a tenant never wrote through S3 have none."""
    both = await _put_with_facts(store, "acme", b"4", S3Facts("d" * 32, {"crc32": "AAAAAA==", "sha1": "s" * 28}))
    assert both == await _put_with_facts(store, "other", b"4", S3Facts("d" * 32, {"sha256": "x" * 44}))
    md5_only = await _put_with_facts(store, "acme", b"55", S3Facts("e" * 32))
    native = (await store.tenant("acme").put("native", b"666")).digest
    statements: list[str] = []
    real = Driver.sent
    monkeypatch.setattr(Driver, "sent", lambda driver, *sent: (statements.extend(sent), real(driver, *sent)))

    for tenant, digest in [("acme", both), ("other", both), ("acme", md5_only), ("acme", native), ("nobody", both)]:
        statements.clear()
        facts = await buckets.facts(store.core, tenant, digest)
        assert len(statements) == 1
        recorded = await rows(
            store,
            "SELECT e.md5, c.algorithm, c.value FROM etags e JOIN tenants t ON t.id = e.tenant_id "
            "LEFT JOIN checksums c ON c.tenant_id = e.tenant_id AND c.digest = e.digest "
            "WHERE t.name = :t AND e.digest = :d",
            t=tenant,
            d=digest,
        )
        assert facts == S3Facts(
            recorded[0][0] if recorded else None, {row[1]: row[2] for row in recorded if row[1] is not None}
        )
    assert await buckets.facts(store.core, "acme", both) == S3Facts("d" * 32, {"crc32": "AAAAAA==", "sha1": "s" * 28})
    assert await buckets.facts(store.core, "other", both) == S3Facts("d" * 32, {"sha256": "x" * 44})
    assert await buckets.facts(store.core, "acme", md5_only) == S3Facts("e" * 32)
    assert await buckets.facts(store.core, "acme", native) == S3Facts()
