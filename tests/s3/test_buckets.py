"""Buckets: per-tenant names, invisible to other tenants, deleted only when empty."""

from __future__ import annotations

import pytest

from blobstore import BlobStore, InvalidInput, buckets


async def test_two_tenants_may_each_own_a_bucket_of_one_name(store: BlobStore) -> None:
    """The same name is created once per tenant; a second create by the same tenant changes nothing."""
    assert await buckets.create(store.core, "acme", "uploads")
    assert await buckets.create(store.core, "globex", "uploads")
    assert not await buckets.create(store.core, "acme", "uploads")
    assert [bucket.name for bucket in await buckets.list_buckets(store.core, "acme")] == ["uploads"]


async def test_another_tenants_bucket_is_not_there(store: BlobStore) -> None:
    """find and delete see only the caller's own buckets."""
    await buckets.create(store.core, "acme", "private")
    assert await buckets.find(store.core, "globex", "private") is None
    assert await buckets.delete(store.core, "globex", "private") is buckets.Deletion.MISSING
    assert await buckets.list_buckets(store.core, "globex") == []
    assert await buckets.find(store.core, "acme", "private") is not None


async def test_a_bucket_holding_keys_is_not_deleted(store: BlobStore) -> None:
    """A key under <bucket>/ keeps the bucket; once it is gone the bucket can be deleted."""
    await buckets.create(store.core, "acme", "photos")
    await store.tenant("acme").put(buckets.key_of("photos", "a.jpg"), b"jpeg")
    await store.tenant("acme").put("photosynthesis", b"not in the bucket")
    assert await buckets.delete(store.core, "acme", "photos") is buckets.Deletion.NOT_EMPTY
    await store.tenant("acme").delete("photos/a.jpg")
    assert await buckets.delete(store.core, "acme", "photos") is buckets.Deletion.DELETED
    assert await buckets.find(store.core, "acme", "photos") is None


@pytest.mark.parametrize("name", ["ab", "Upper", "-start", "end-", "a..b", "192.168.1.1", "a" * 64, "under_score"])
async def test_bad_bucket_names_are_refused(store: BlobStore, name: str) -> None:
    """Names outside S3's rules are InvalidInput and create nothing."""
    with pytest.raises(InvalidInput):
        await buckets.create(store.core, "acme", name)
    assert await buckets.list_buckets(store.core, "acme") == []
