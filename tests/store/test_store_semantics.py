"""put/get/stat/exists/copy/delete/list, dedup and read integrity, on every deployment, over both transports:
the in-process ``Tenant`` and ``BlobClient`` over a real HTTP server."""

from __future__ import annotations

import pytest

from blobstore import AlreadyExists, BlobStore, IntegrityError, InvalidInput, InvalidKey, NotFound
from tests.support.digests import digest_of
from tests.support.live_server import Connect, Handle
from tests.support.stores import StoreFactory
from tests.support.workers import blob_rows, check_invariants, data_objects, object_key_of, refcount_of, rows, scalar


async def read_range(tenant: Handle, key: str, byte_range: tuple[int, int]) -> bytes:
    async with tenant.open(key, byte_range=byte_range) as stream:
        return await stream.read()


# --- put / get / stat / exists ---------------------------------------------------------------------


async def test_put_returns_what_get_and_stat_see(store: BlobStore, connect: Connect) -> None:
    """A put returns digest, size, content type and metadata; get returns the bytes and stat the same info."""
    acme = await connect(store, "acme")
    data = b"hello, blobstore"
    info = await acme.put("docs/a.txt", data, content_type="text/plain", metadata={"user": "42"})
    assert (info.tenant, info.key, info.digest, info.size) == ("acme", "docs/a.txt", digest_of(data), len(data))
    assert (info.content_type, info.metadata, info.deduplicated) == ("text/plain", {"user": "42"}, False)
    assert await acme.get("docs/a.txt") == data
    stat = await acme.stat("docs/a.txt")
    assert (stat.key, stat.digest, stat.size, stat.content_type, stat.metadata) == (
        "docs/a.txt",
        info.digest,
        len(data),
        "text/plain",
        {"user": "42"},
    )
    assert stat.created_at == info.created_at
    assert await acme.exists("docs/a.txt")
    assert not await acme.exists("docs/b.txt")


async def test_missing_keys_raise_not_found(store: BlobStore, connect: Connect) -> None:
    """get/stat/open/copy of a missing key raise NotFound (also a FileNotFoundError); delete returns False."""
    acme = await connect(store, "acme")
    await acme.put("present", b"x")
    for call in (lambda: acme.get("absent"), lambda: acme.stat("absent"), lambda: acme.copy("absent", "other")):
        with pytest.raises(NotFound):
            await call()
    with pytest.raises(FileNotFoundError):
        async with acme.open("absent"):
            pass
    assert await acme.delete("absent") is False
    assert not await acme.exists("other")


async def test_put_replaces_and_the_old_blob_loses_a_reference(store: BlobStore, connect: Connect) -> None:
    """Putting other bytes on an existing key replaces them and decrements the old blob's refcount."""
    acme = await connect(store, "acme")
    old, new = b"old bytes", b"new bytes!"
    await acme.put("k", old)
    await acme.put("k2", old)
    assert await refcount_of(store, digest_of(old)) == 2
    info = await acme.put("k", new, content_type="text/plain")
    assert info.digest == digest_of(new)
    assert await acme.get("k") == new
    assert (await acme.stat("k")).content_type == "text/plain"
    assert await refcount_of(store, digest_of(old)) == 1
    assert await refcount_of(store, digest_of(new)) == 1
    assert await acme.get("k2") == old
    usage = await rows(store, "SELECT used_bytes, used_objects FROM tenants WHERE name = 'acme'")
    assert usage == [(len(new) + len(old), 2)]
    await check_invariants(store)


async def test_replacing_with_the_same_bytes_keeps_one_reference(store: BlobStore, connect: Connect) -> None:
    """Putting the same bytes again on the same key keeps refcount 1 and reports deduplicated."""
    acme = await connect(store, "acme")
    await acme.put("k", b"same")
    again = await acme.put("k", b"same", metadata={"v": "2"})
    assert again.deduplicated
    assert await refcount_of(store, digest_of(b"same")) == 1
    assert (await acme.stat("k")).metadata == {"v": "2"}
    assert len(await data_objects(store)) == 1
    await check_invariants(store)


async def test_put_if_absent_on_an_existing_key_changes_nothing(store: BlobStore, connect: Connect) -> None:
    """put(if_absent=True) on an existing key raises AlreadyExists; value, refcounts and storage stay as they were."""
    acme = await connect(store, "acme")
    first = await acme.put("k", b"first", metadata={"a": "1"})
    objects = await data_objects(store)
    for data in (b"second", b"first"):
        with pytest.raises(AlreadyExists):
            await acme.put("k", data, if_absent=True)
    with pytest.raises(FileExistsError):
        await acme.put("k", digest=first.digest, if_absent=True)
    assert await acme.get("k") == b"first"
    assert (await acme.stat("k")).metadata == {"a": "1"}
    assert await data_objects(store) == objects
    assert await refcount_of(store, first.digest) == 1
    assert await scalar(store, "SELECT COUNT(*) FROM blobs") == 1
    await check_invariants(store)
    assert (await acme.put("new", b"second", if_absent=True)).size == 6


async def test_put_by_digest_alone_adds_a_reference_to_held_bytes(store: BlobStore, connect: Connect) -> None:
    """put(key, digest=d) without data binds the key to bytes this tenant already references, writing nothing."""
    acme = await connect(store, "acme")
    first = await acme.put("a", b"payload", content_type="application/x")
    objects = await data_objects(store)
    info = await acme.put("b", digest=first.digest, content_type="text/plain")
    assert (info.digest, info.size, info.deduplicated) == (first.digest, 7, True)
    assert await acme.get("b") == b"payload"
    assert (await acme.stat("b")).content_type == "text/plain"
    assert await refcount_of(store, first.digest) == 2
    assert await data_objects(store) == objects
    await check_invariants(store)


async def test_put_by_digest_of_foreign_or_unknown_bytes_is_not_found_alike(store: BlobStore, connect: Connect) -> None:
    """put by a digest only another tenant holds fails exactly like an unknown digest: NotFound, same message."""
    other = await connect(store, "other")
    acme = await connect(store, "acme")
    held = await other.put("secret", b"other tenant's bytes")
    await acme.put("mine", b"acme's own bytes")
    unknown = digest_of(b"nobody has these")
    errors = []
    for digest in (held.digest, unknown):
        with pytest.raises(NotFound) as caught:
            await acme.put("k", digest=digest)
        errors.append((type(caught.value), str(caught.value).replace(digest, "<digest>")))
    assert errors[0] == errors[1]
    assert not await acme.exists("k")
    assert await refcount_of(store, held.digest) == 1
    with pytest.raises(NotFound):
        await (await connect(store, "fresh")).put("k", digest=held.digest)  # a tenant that holds nothing at all


async def test_put_needs_data_or_a_digest(store: BlobStore, connect: Connect) -> None:
    """put without data and without digest, or with a malformed digest, raises InvalidInput."""
    acme = await connect(store, "acme")
    with pytest.raises(InvalidInput):
        await acme.put("k")
    with pytest.raises(InvalidInput):
        await acme.put("k", b"x", digest="NOT-A-DIGEST")
    assert await rows(store, "SELECT id FROM blobs") == []


async def test_expected_digest_mismatch_stores_nothing(store: BlobStore, connect: Connect) -> None:
    """A put whose bytes do not hash to the supplied digest raises IntegrityError and stores nothing at all."""
    acme = await connect(store, "acme")
    with pytest.raises(IntegrityError):
        await acme.put("k", b"actual bytes", digest=digest_of(b"other bytes"))
    assert not await acme.exists("k")
    assert await rows(store, "SELECT key FROM refs") == []
    assert await rows(store, "SELECT id FROM blobs") == []
    assert await data_objects(store) == []
    info = await acme.put("k", b"actual bytes", digest=digest_of(b"actual bytes"))
    assert info.digest == digest_of(b"actual bytes")


async def test_a_mismatch_against_existing_bytes_changes_nothing(store: BlobStore, connect: Connect) -> None:
    """A digest mismatch on an existing key with already stored bytes leaves key, refcounts and storage alone."""
    acme = await connect(store, "acme")
    await acme.put("k", b"v1")
    await acme.put("k2", b"v2")
    objects = await data_objects(store)
    with pytest.raises(IntegrityError):
        await acme.put("k", b"v2", digest=digest_of(b"v1"))
    assert await acme.get("k") == b"v1"
    assert await refcount_of(store, digest_of(b"v2")) == 1
    assert await data_objects(store) == objects


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"content_type": ""}, InvalidInput),
        ({"content_type": "x" * 256}, InvalidInput),
        ({"content_type": "a\nb"}, InvalidInput),
        ({"metadata": {"k": 1}}, InvalidInput),
        ({"metadata": ["k"]}, InvalidInput),
        ({"metadata": {"k": "v" * 9000}}, InvalidInput),
    ],
)
async def test_bad_put_options_store_nothing(
    store: BlobStore, kwargs: dict[str, object], error: type, connect: Connect
) -> None:
    """Bad content types or metadata raise InvalidInput and leave no tenant, blob or object behind."""
    with pytest.raises(error):
        await (await connect(store, "acme")).put("k", b"data", **kwargs)  # type: ignore[arg-type]
    assert await rows(store, "SELECT name FROM tenants") == []
    assert await data_objects(store) == []


# --- delete ----------------------------------------------------------------------------------------


async def test_delete_returns_whether_the_key_existed(store: BlobStore, connect: Connect) -> None:
    """delete returns True once, then False; the key is gone and the refcount drops to zero."""
    acme = await connect(store, "acme")
    info = await acme.put("k", b"bytes")
    assert await acme.delete("k") is True
    assert await acme.delete("k") is False
    assert not await acme.exists("k")
    with pytest.raises(NotFound):
        await acme.get("k")
    assert await refcount_of(store, info.digest) == 0
    assert await rows(store, "SELECT used_bytes, used_objects FROM tenants WHERE name = 'acme'") == [(0, 0)]
    assert await (await connect(store, "never-used")).delete("k") is False


async def test_delete_keeps_bytes_for_other_references(store: BlobStore, connect: Connect) -> None:
    """Deleting one of several references (same tenant or another) leaves the others readable."""
    acme, other = await connect(store, "acme"), await connect(store, "other")
    data = b"shared bytes" * 100
    await acme.put("a", data)
    await acme.put("b", data)
    await other.put("c", data)
    assert await acme.delete("a")
    assert await refcount_of(store, digest_of(data)) == 2
    assert await acme.get("b") == data
    assert await other.get("c") == data
    assert await acme.delete("b")
    assert await other.get("c") == data
    await store.gc()
    assert await other.get("c") == data
    assert len(await data_objects(store)) == 1
    await check_invariants(store)


# --- copy ------------------------------------------------------------------------------------------


async def test_copy_adds_a_reference_without_writing_an_object(store: BlobStore, connect: Connect) -> None:
    """copy binds a new key to the same blob: refcount +1, no new object, metadata carried over."""
    acme = await connect(store, "acme")
    src = await acme.put("src", b"copy me", content_type="text/plain", metadata={"m": "1"})
    before = await data_objects(store)
    copied = await acme.copy("src", "dst")
    assert (copied.key, copied.digest, copied.size) == ("dst", src.digest, src.size)
    assert (copied.content_type, copied.metadata) == ("text/plain", {"m": "1"})
    assert await data_objects(store) == before
    assert await refcount_of(store, src.digest) == 2
    assert await acme.get("dst") == b"copy me"
    assert await acme.delete("src")
    assert await acme.get("dst") == b"copy me"
    assert await rows(store, "SELECT used_bytes, used_objects FROM tenants WHERE name = 'acme'") == [(7, 1)]
    await check_invariants(store)


async def test_copy_over_an_existing_key_replaces_it(store: BlobStore, connect: Connect) -> None:
    """copy onto an existing key replaces it (the old blob loses a reference); if_absent raises AlreadyExists."""
    acme = await connect(store, "acme")
    await acme.put("src", b"source")
    old = await acme.put("dst", b"old destination")
    with pytest.raises(AlreadyExists):
        await acme.copy("src", "dst", if_absent=True)
    assert await acme.get("dst") == b"old destination"
    await acme.copy("src", "dst")
    assert await acme.get("dst") == b"source"
    assert await refcount_of(store, old.digest) == 0
    assert await refcount_of(store, digest_of(b"source")) == 2
    await acme.copy("dst", "dst")
    assert await refcount_of(store, digest_of(b"source")) == 2
    await check_invariants(store)


# --- open with a byte range ------------------------------------------------------------------------

DATA = bytes(range(256)) * 40  # 10240 bytes


@pytest.mark.parametrize(
    ("byte_range", "expected"),
    [
        ((0, 0), DATA[:1]),
        ((0, 9), DATA[:10]),
        ((1000, 1999), DATA[1000:2000]),
        ((len(DATA) - 1, len(DATA) - 1), DATA[-1:]),
        ((len(DATA) - 5, len(DATA) + 100), DATA[-5:]),
        ((0, 10**12), DATA),
        ((len(DATA), len(DATA) + 10), b""),
        ((10**9, 10**9), b""),
    ],
)
async def test_open_with_a_byte_range(
    store: BlobStore, byte_range: tuple[int, int], expected: bytes, connect: Connect
) -> None:
    """open(byte_range=(first, last)) yields the inclusive range, clamped at the end; past the end is empty."""
    await (await connect(store, "acme")).put("k", DATA)
    assert await read_range(await connect(store, "acme"), "k", byte_range) == expected


async def test_open_streams_the_whole_value_with_its_info(store: BlobStore, connect: Connect) -> None:
    """open without a range streams all bytes in chunks and exposes the key's info."""
    acme = await connect(store, "acme")
    info = await acme.put("k", DATA, content_type="application/octet-stream")
    async with acme.open("k") as stream:
        assert stream.info.digest == info.digest
        assert stream.info.content_type == "application/octet-stream"
        chunks = [chunk async for chunk in stream]
    assert b"".join(chunks) == DATA


@pytest.mark.parametrize("byte_range", [(-1, 5), (5, 4), (0,), [0, 1], (0, 1.5), "0-9"])
async def test_open_rejects_invalid_byte_ranges(store: BlobStore, byte_range: object, connect: Connect) -> None:
    """A negative, reversed or malformed byte range raises InvalidInput."""
    await (await connect(store, "acme")).put("k", DATA)
    with pytest.raises(InvalidInput):
        await read_range(await connect(store, "acme"), "k", byte_range)  # type: ignore[arg-type]


async def test_ranges_of_an_empty_blob_are_empty(store: BlobStore, connect: Connect) -> None:
    """An empty value reads as b'' whole and for any range."""
    await (await connect(store, "acme")).put("empty", b"")
    assert await (await connect(store, "acme")).get("empty") == b""
    assert await read_range(await connect(store, "acme"), "empty", (0, 0)) == b""


# --- list ------------------------------------------------------------------------------------------


async def test_list_by_prefix_in_code_point_order(store: BlobStore, connect: Connect) -> None:
    """list(prefix) returns exactly the keys starting with the prefix, in code-point order, with their info."""
    acme = await connect(store, "acme")
    keys = ["a/1", "a/2", "a/10", "a/B", "a/b", "a/é", "a/🙂", "a/\uffff", "ab", "b/1", "a"]
    for key in keys:
        await acme.put(key, key.encode())
    page = await acme.list("a/")
    assert [item.key for item in page] == sorted(k for k in keys if k.startswith("a/"))
    assert page.next_after is None
    first = page.items[0]
    assert (first.tenant, first.size, first.digest) == ("acme", len(b"a/1"), digest_of(b"a/1"))
    assert [item.key for item in await acme.list()] == sorted(keys)
    assert [item.key for item in await acme.list("a")] == sorted(k for k in keys if k.startswith("a"))
    assert len(await acme.list("zzz")) == 0


@pytest.mark.parametrize("wild", ["%", "_", "\\", "*", "[a]", "%%"])
async def test_prefix_characters_are_literal(store: BlobStore, wild: str, connect: Connect) -> None:
    """SQL LIKE wildcards and escapes in a prefix match only themselves."""
    acme = await connect(store, "acme")
    for key in [f"x{wild}y", "xay", "x_y_", "x%", "xy", "x\\", "x\\y"]:
        await acme.put(key, b".")
    listed = [item.key for item in await acme.list(f"x{wild}")]
    stored = {f"x{wild}y", "xay", "x_y_", "x%", "xy", "x\\", "x\\y"}
    assert listed == sorted(k for k in stored if k.startswith(f"x{wild}"))


async def test_keyset_pagination_returns_every_key_once_in_order(store: BlobStore, connect: Connect) -> None:
    """Paging with after=next_after visits every matching key exactly once, in order, and stops."""
    acme = await connect(store, "acme")
    keys = [f"p/{i:03d}" for i in range(23)] + ["p/é", "p/\U0001f600", "p/Z", "q/0"]
    for key in keys:
        await acme.put(key, b"v")
    seen: list[str] = []
    after: str | None = None
    pages = 0
    while True:
        page = await acme.list("p/", limit=5, after=after)
        pages += 1
        assert len(page) <= 5
        seen += [item.key for item in page]
        if page.next_after is None:
            break
        assert page.next_after == page.items[-1].key
        after = page.next_after
    expected = sorted(k for k in keys if k.startswith("p/"))
    assert seen == expected
    assert pages == 6  # 26 keys, 5 per page: the last page has 1 and says no more
    exact = await acme.list("p/", limit=len(expected))
    assert len(exact) == len(expected)
    assert exact.next_after is None


async def test_after_a_key_that_does_not_exist(store: BlobStore, connect: Connect) -> None:
    """after need not be a stored key: listing continues from the next key above it."""
    acme = await connect(store, "acme")
    for key in ["a", "c", "e"]:
        await acme.put(key, b".")
    assert [item.key for item in await acme.list(after="b")] == ["c", "e"]
    assert [item.key for item in await acme.list(after="e")] == []


@pytest.mark.parametrize("limit", [0, -1, 1001, 1.5, "10", True, None])
async def test_list_rejects_bad_limits(store: BlobStore, limit: object, connect: Connect) -> None:
    """limit must be an int from 1 to 1000 (S3's cap on a page); anything else raises InvalidInput."""
    with pytest.raises(InvalidInput):
        await (await connect(store, "acme")).list(limit=limit)  # type: ignore[arg-type]


async def test_list_limits_at_the_boundaries(store: BlobStore, connect: Connect) -> None:
    """limit=1 and limit=1000 are accepted."""
    acme = await connect(store, "acme")
    await acme.put("a", b".")
    await acme.put("b", b".")
    page = await acme.list(limit=1)
    assert [item.key for item in page] == ["a"]
    assert page.next_after == "a"
    assert len(await acme.list(limit=1000)) == 2


async def test_list_rejects_control_characters_in_prefix(store: BlobStore, connect: Connect) -> None:
    """A prefix with a control character raises InvalidKey."""
    with pytest.raises(InvalidKey):
        await (await connect(store, "acme")).list("a\n")


async def test_listing_an_unknown_tenant_is_empty(store: BlobStore, connect: Connect) -> None:
    """A tenant that never stored anything lists no keys (and is not created by listing)."""
    await (await connect(store, "acme")).put("k", b".")
    page = await (await connect(store, "nobody")).list()
    assert (page.items, page.next_after) == ([], None)
    assert await rows(store, "SELECT name FROM tenants ORDER BY name") == [("acme",)]


# --- dedup -----------------------------------------------------------------------------------------


async def test_same_bytes_under_two_tenants_and_three_keys_are_stored_once(store: BlobStore, connect: Connect) -> None:
    """Three puts of the same bytes (two tenants) write one object, count refcount 3, and read back everywhere."""
    acme, other = await connect(store, "acme"), await connect(store, "other")
    data = b"deduplicate me" * 1000
    await acme.put("one", data)
    await acme.put("two", data)
    await other.put("three", data)
    assert len(await data_objects(store)) == 1
    assert await refcount_of(store, digest_of(data)) == 3
    assert len(await blob_rows(store, digest_of(data))) == 1
    for tenant, key in [(acme, "one"), (acme, "two"), (other, "three")]:
        assert await tenant.get(key) == data
    await check_invariants(store)


async def test_deduplicated_flag_is_tenant_relative(store: BlobStore, connect: Connect) -> None:
    """deduplicated is false for a tenant's first copy of bytes (even if another tenant has them), true after."""
    acme, other = await connect(store, "acme"), await connect(store, "other")
    data = b"flag me"
    assert (await acme.put("a", data)).deduplicated is False
    assert (await acme.put("b", data)).deduplicated is True
    assert (await other.put("a", data)).deduplicated is False
    assert (await other.put("b", data)).deduplicated is True
    assert (await acme.copy("a", "c")).deduplicated is True
    assert await acme.delete("a")
    assert await acme.delete("b")
    assert await acme.delete("c")
    assert (await acme.put("again", data)).deduplicated is False
    assert len(await data_objects(store)) == 1


async def test_tenant_dedup_scope_stores_one_object_per_tenant(
    open_store: StoreFactory, deployment: str, connect: Connect
) -> None:
    """With dedup_scope='tenant' identical bytes are shared inside a tenant but stored once per tenant."""
    store = await open_store(deployment, dedup_scope="tenant")
    acme, other = await connect(store, "acme"), await connect(store, "other")
    data = b"per tenant" * 10
    await acme.put("a", data)
    await acme.put("b", data)
    await other.put("a", data)
    assert (await other.put("b", data)).deduplicated
    assert len(await data_objects(store)) == 2
    scopes = sorted((scope, refcount) for _, scope, _, refcount, _ in await blob_rows(store, digest_of(data)))
    assert scopes == [("acme", 2), ("other", 2)]
    await acme.delete("a")
    await acme.delete("b")
    assert await other.get("a") == data
    await check_invariants(store)


async def test_a_deleted_blob_is_revived_by_a_new_put(store: BlobStore, connect: Connect) -> None:
    """Bytes whose last reference was deleted are reused (no new object) by a put before GC reclaims them."""
    acme = await connect(store, "acme")
    await acme.put("k", b"phoenix")
    objects = await data_objects(store)
    await acme.delete("k")
    await acme.put("k2", b"phoenix")
    assert await data_objects(store) == objects
    assert await refcount_of(store, digest_of(b"phoenix")) == 1
    await check_invariants(store)


# --- integrity on read -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "damage",
    ["flip", "truncate", "extend", "empty", "delete"],
)
async def test_damaged_objects_fail_reads_with_integrity_error(store: BlobStore, damage: str, connect: Connect) -> None:
    """A stored object that was overwritten, truncated, extended, emptied or deleted makes get raise IntegrityError."""
    acme = await connect(store, "acme")
    data = b"precious bytes " * 100
    await acme.put("k", data)
    object_key = await object_key_of(store, "acme", "k")
    if damage == "flip":
        await store.storage.write(object_key, b"X" + data[1:])
    elif damage == "truncate":
        await store.storage.write(object_key, data[:-1])
    elif damage == "extend":
        await store.storage.write(object_key, data + b"!")
    elif damage == "empty":
        await store.storage.write(object_key, b"")
    else:
        await store.storage.delete_many([object_key])
    with pytest.raises(IntegrityError):
        await acme.get("k")
    with pytest.raises(IntegrityError):
        async with acme.open("k") as stream:
            await stream.read()


async def test_a_ranged_read_of_a_missing_object_is_an_integrity_error(store: BlobStore, connect: Connect) -> None:
    """A ranged read of a key whose object vanished from storage raises IntegrityError, not a backend error."""
    acme = await connect(store, "acme")
    await acme.put("k", DATA)
    await store.storage.delete_many([await object_key_of(store, "acme", "k")])
    with pytest.raises(IntegrityError):
        await read_range(await connect(store, "acme"), "k", (10, 20))


@pytest.mark.parametrize("byte_range", [(5000, 5100), (9000, 20_000)])
async def test_a_ranged_read_past_a_truncated_object_is_an_integrity_error(
    store: BlobStore, byte_range: tuple[int, int], connect: Connect
) -> None:
    """A ranged read that reaches past the end of a truncated object raises IntegrityError, never short bytes."""
    acme = await connect(store, "acme")
    await acme.put("k", DATA)
    await store.storage.write(await object_key_of(store, "acme", "k"), DATA[:4000])
    with pytest.raises(IntegrityError):
        await read_range(await connect(store, "acme"), "k", byte_range)
