"""Tenant isolation: one tenant can never see, read, probe, copy, delete or list another tenant's keys."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import blake3
import pytest

from blobstore import BlobStore, BlobStoreError, NotFound, Tenant
from tests.support.workers import check_invariants, refcount_of

SECRET = b"the other tenant's secret bytes"
SECRET_DIGEST = blake3.blake3(SECRET).hexdigest()


async def _read(tenant: Tenant, key: str) -> bytes:
    async with tenant.open(key) as stream:
        return await stream.read()


async def _ranged(tenant: Tenant, key: str) -> bytes:
    async with tenant.open(key, byte_range=(0, 3)) as stream:
        return await stream.read()


#: Every read-like call a tenant can aim at a key, by name.
PROBES: dict[str, Callable[[Tenant, str], Awaitable[object]]] = {
    "get": lambda t, k: t.get(k),
    "stat": lambda t, k: t.stat(k),
    "open": _read,
    "open-range": _ranged,
    "copy-from": lambda t, k: t.copy(k, "stolen"),
    "put-by-digest": lambda t, k: t.put("stolen", digest=SECRET_DIGEST),
}


async def _outcome(call: Awaitable[object]) -> tuple[str, str]:
    """What a caller can observe of a call: its result or its error type and message."""
    try:
        result = await call
    except BlobStoreError as exc:
        return type(exc).__name__, str(exc)
    return "ok", repr(result)


@pytest.mark.parametrize("probe", sorted(PROBES))
async def test_a_foreign_key_looks_exactly_like_a_missing_one(store: BlobStore, probe: str) -> None:
    """Each read-like call on another tenant's key fails with the same error type and message as on a missing key."""
    acme, other = store.tenant("acme"), store.tenant("other")
    await acme.put("own", b"acme's own")
    missing = await _outcome(PROBES[probe](acme, "secret"))
    await other.put("secret", SECRET)
    foreign = await _outcome(PROBES[probe](acme, "secret"))
    assert missing[0] == "NotFound"
    assert foreign == missing
    assert not await acme.exists("stolen")


@pytest.mark.parametrize("probe", sorted(PROBES))
async def test_a_tenant_that_never_stored_anything_sees_the_same_errors(store: BlobStore, probe: str) -> None:
    """A brand-new tenant probing another tenant's key gets the same error as a tenant probing a missing key."""
    await store.tenant("acme").put("own", b"acme's own")
    missing = await _outcome(PROBES[probe](store.tenant("acme"), "secret"))
    await store.tenant("other").put("secret", SECRET)
    foreign = await _outcome(PROBES[probe](store.tenant("newcomer"), "secret"))
    assert foreign == missing


async def test_exists_is_false_for_another_tenants_key(store: BlobStore) -> None:
    """exists() is False for a key only another tenant holds."""
    await store.tenant("other").put("secret", SECRET)
    assert await store.tenant("other").exists("secret")
    assert not await store.tenant("acme").exists("secret")


async def test_delete_cannot_touch_another_tenants_key(store: BlobStore) -> None:
    """delete of another tenant's key returns False (as for a missing key) and the key stays readable."""
    other = store.tenant("other")
    info = await other.put("secret", SECRET)
    assert await store.tenant("acme").delete("secret") is False
    assert await store.tenant("newcomer").delete("secret") is False
    assert await other.get("secret") == SECRET
    assert await refcount_of(store, info.digest) == 1


async def test_listing_shows_only_the_tenants_own_keys(store: BlobStore) -> None:
    """list never returns another tenant's keys, whatever the prefix, paging cursor or tenant name overlap."""
    acme, acme2, other = store.tenant("acme"), store.tenant("acme2"), store.tenant("other")
    await acme.put("shared/a", b"1")
    await acme2.put("shared/b", b"2")
    await other.put("shared/c", SECRET)
    await other.put("z", SECRET)
    assert [item.key for item in await acme.list()] == ["shared/a"]
    assert [item.key for item in await acme.list("shared/")] == ["shared/a"]
    assert [item.key for item in await acme.list(after="shared/a")] == []
    assert [item.key for item in await acme2.list()] == ["shared/b"]
    assert [item.key for item in await other.list()] == ["shared/c", "z"]
    assert [item.key for item in await store.tenant("nobody").list()] == []


async def test_writing_the_same_key_name_creates_an_independent_key(store: BlobStore) -> None:
    """Putting, replacing, copying onto and deleting a key in one tenant never changes the same key in another."""
    acme, other = store.tenant("acme"), store.tenant("other")
    await other.put("k", SECRET)
    await acme.put("k", b"acme's value")
    await acme.put("src", b"acme's source")
    await acme.copy("src", "k")
    assert await other.get("k") == SECRET
    assert await acme.get("k") == b"acme's source"
    assert await acme.delete("k")
    assert await other.get("k") == SECRET
    with pytest.raises(NotFound):
        await acme.get("k")
    await check_invariants(store)


async def test_put_by_digest_never_reaches_another_tenants_bytes(store: BlobStore) -> None:
    """put by a digest that only another tenant holds is NotFound with the message of an unknown digest."""
    held = await store.tenant("other").put("secret", SECRET)
    acme = store.tenant("acme")
    await acme.put("own", b"acme's own")
    with pytest.raises(NotFound) as foreign:
        await acme.put("stolen", digest=held.digest)
    with pytest.raises(NotFound) as unknown:
        await acme.put("stolen", digest="f" * 64)
    assert str(foreign.value).replace(held.digest, "D") == str(unknown.value).replace("f" * 64, "D")
    assert not await acme.exists("stolen")
    assert await refcount_of(store, held.digest) == 1


async def test_deduplicated_never_reveals_another_tenants_bytes(store: BlobStore) -> None:
    """A tenant's first put of bytes another tenant holds reports deduplicated=False, like brand-new bytes."""
    await store.tenant("other").put("secret", SECRET)
    info = await store.tenant("acme").put("guess", SECRET)
    assert info.deduplicated is False
    assert info.to_dict()["deduplicated"] is False
