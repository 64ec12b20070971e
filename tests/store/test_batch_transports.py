"""The tenant contract (blobstore.contract.TenantAPI) over both transports: batches, the missing-digest
probe, usage and signed URLs give the same outcomes in process (``Tenant``) and over HTTP (``BlobClient``,
whose batches are one request each), and both handles have the contract's exact signatures."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from blobstore import (
    AlreadyExists,
    BlobInfo,
    BlobStore,
    IntegrityError,
    InvalidInput,
    InvalidKey,
    NotFound,
    ObjectTooLarge,
    PutItem,
    QuotaExceeded,
    Tenant,
    TenantAPI,
)
from blobstore.client import BlobClient
from blobstore.store import MAX_BATCH
from tests.support.digests import digest_of
from tests.support.live_server import Connect, serving
from tests.support.stores import FakeClock, StoreFactory
from tests.support.workers import check_invariants


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def test_tenant_and_client_have_the_contracts_exact_signatures() -> None:
    """Every member of TenantAPI exists on both handles with the same parameters, kinds and defaults
    (mypy checks the types: blobstore/contract.py)."""
    members = [name for name in vars(TenantAPI) if not name.startswith("_")]
    assert {"put_many", "delete_many", "stat_many", "missing", "usage", "sign_url", "open", "list"} <= set(members)
    for name in members:
        if isinstance(vars(TenantAPI)[name], property):
            continue
        wanted = [(p.name, p.kind, p.default) for p in inspect.signature(getattr(TenantAPI, name)).parameters.values()]
        for handle in (Tenant, BlobClient):
            found = [(p.name, p.kind, p.default) for p in inspect.signature(getattr(handle, name)).parameters.values()]
            assert found == wanted, f"{handle.__name__}.{name}"


# --- put_many ---------------------------------------------------------------------------------------


async def test_put_many_gives_each_item_the_outcome_its_single_put_would(
    store: BlobStore, connect: Connect, tmp_path: Path
) -> None:
    """Bad keys, repeats, if_absent on an existing key, a digest mismatch and a str fail alone; bytes, a file
    and a stream are stored, deduplicated and marked replaced as single puts would be."""
    acme: TenantAPI = await connect(store, "acme")
    await acme.put("exists", b"old")
    await acme.put("seed", b"seed")
    path = tmp_path / "file.txt"
    path.write_bytes(b"from a file")
    outcomes = await acme.put_many(
        [
            PutItem("bad\x07", b"x"),
            PutItem("ok", b"fine", content_type="text/plain", metadata={"n": "1"}),
            PutItem("ok", b"again"),
            PutItem("exists", b"new", if_absent=True),
            PutItem("mismatch", b"bytes", digest="0" * 64),
            PutItem("text", "a str"),  # type: ignore[arg-type]
            PutItem("file", path),
            PutItem("stream", chunks(b"fi", b"ne")),
            PutItem("seed", b"old", digest=digest_of(b"old")),
            PutItem("empty", b""),
        ]
    )
    kinds = [type(outcome) for outcome in outcomes]
    assert kinds == [InvalidKey, BlobInfo, InvalidInput, AlreadyExists, IntegrityError, InvalidInput] + [BlobInfo] * 4
    ok, stream, again, empty = outcomes[1], outcomes[7], outcomes[8], outcomes[9]
    assert isinstance(ok, BlobInfo)
    assert isinstance(stream, BlobInfo)
    assert isinstance(again, BlobInfo)
    assert isinstance(empty, BlobInfo)
    assert (ok.key, ok.size, ok.content_type, ok.metadata, ok.replaced) == ("ok", 4, "text/plain", {"n": "1"}, False)
    assert (stream.deduplicated, stream.digest) == (True, ok.digest)
    assert (again.replaced, again.deduplicated) == (True, True)
    assert empty.size == 0
    stored = {key: await acme.get(key) for key in ("exists", "ok", "file", "stream", "seed", "empty")}
    assert stored == {
        "exists": b"old",
        "ok": b"fine",
        "file": b"from a file",
        "stream": b"fine",
        "seed": b"old",
        "empty": b"",
    }
    assert [info.key for info in await acme.list()] == ["empty", "exists", "file", "ok", "seed", "stream"]
    await check_invariants(store)


async def test_put_many_decides_quota_item_by_item_in_order(store: BlobStore, connect: Connect) -> None:
    """With room for two more objects, the first two new keys of four are stored and the rest refused."""
    acme: TenantAPI = await connect(store, "acme")
    await acme.put("seed", b"seed")
    await store.set_quota("acme", max_objects=3)
    outcomes = await acme.put_many([PutItem(f"k{i}", f"v{i}".encode()) for i in range(4)])
    assert [type(outcome) for outcome in outcomes] == [BlobInfo, BlobInfo, QuotaExceeded, QuotaExceeded]
    assert (await acme.usage()).objects == 3
    await check_invariants(store)


async def test_an_item_over_the_maximum_object_size_fails_alone(
    open_store: StoreFactory, deployment: str, connect: Connect
) -> None:
    """An item larger than BLOBSTORE_MAX_OBJECT_SIZE is ObjectTooLarge; the items around it are stored."""
    store = await open_store(deployment, max_object_size=8)
    acme: TenantAPI = await connect(store, "acme")
    outcomes = await acme.put_many(
        [PutItem("small", b"8 bytes!"), PutItem("large", b"nine byte"), PutItem("streamed", chunks(b"12345", b"6789"))]
    )
    assert [type(outcome) for outcome in outcomes] == [BlobInfo, ObjectTooLarge, ObjectTooLarge]
    assert [info.key for info in await acme.list()] == ["small"]
    await check_invariants(store)


async def test_a_batch_over_the_limit_is_refused_whole(store: BlobStore, connect: Connect) -> None:
    """More than MAX_BATCH items or keys: InvalidInput, and nothing is stored or deleted."""
    acme: TenantAPI = await connect(store, "acme")
    await acme.put("k", b"kept")
    with pytest.raises(InvalidInput):
        await acme.put_many([PutItem(f"k{i}", b"x") for i in range(MAX_BATCH + 1)])
    with pytest.raises(InvalidInput):
        await acme.delete_many(["k"] * (MAX_BATCH + 1))
    with pytest.raises(InvalidInput):
        await acme.stat_many(["k"] * (MAX_BATCH + 1))
    assert [info.key for info in await acme.list()] == ["k"]


# --- delete_many and stat_many ----------------------------------------------------------------------


async def test_delete_many_and_stat_many_answer_per_key(store: BlobStore, connect: Connect) -> None:
    """stat_many: BlobInfo, NotFound (missing or another tenant's key), InvalidKey; delete_many: True once,
    False for missing and repeated keys, InvalidKey; another tenant's keys are never touched."""
    acme: TenantAPI = await connect(store, "acme")
    stored = await acme.put("a", b"value", content_type="text/plain", metadata={"m": "1"})
    await acme.put("b", b"value")
    await store.tenant("other").put("theirs", b"secret")
    stats = await acme.stat_many(["a", "theirs", "bad\x07", "a"])
    first = stats[0]
    assert isinstance(first, BlobInfo)
    assert (first.key, first.digest, first.size, first.content_type, first.metadata) == (
        "a",
        stored.digest,
        5,
        "text/plain",
        {"m": "1"},
    )
    assert first.created_at == stored.created_at
    assert [type(outcome) for outcome in stats[1:]] == [NotFound, InvalidKey, BlobInfo]
    deleted = await acme.delete_many(["a", "theirs", "a", "bad\x07", "b"])
    assert deleted[:3] == [True, False, False]
    assert isinstance(deleted[3], InvalidKey)
    assert deleted[4] is True
    assert len(await acme.list()) == 0
    assert await store.tenant("other").get("theirs") == b"secret"
    assert await acme.delete_many([]) == []
    assert await acme.stat_many([]) == []
    assert await acme.put_many([]) == []
    await check_invariants(store)


# --- missing, usage, sign_url -----------------------------------------------------------------------


async def test_missing_and_usage_show_only_the_tenants_own_holdings(store: BlobStore, connect: Connect) -> None:
    """missing: the digests this tenant does not hold, in order, without repeats (another tenant's bytes are
    missing); usage: its own keys and logical bytes."""
    acme: TenantAPI = await connect(store, "acme")
    await acme.put("a", b"mine")
    await acme.put("b", b"mine")
    await store.tenant("other").put("x", b"theirs")
    mine, theirs, nobodys = digest_of(b"mine"), digest_of(b"theirs"), digest_of(b"nobody's")
    assert await acme.missing([nobodys, mine, theirs, nobodys]) == [nobodys, theirs]
    with pytest.raises(InvalidInput):
        await acme.missing(["not a digest"])
    usage = await acme.usage()
    assert (usage.tenant, usage.objects, usage.logical_bytes, usage.max_objects) == ("acme", 2, 8, None)


async def test_a_signed_url_works_on_a_server_of_the_store(
    store: BlobStore, connect: Connect, clock: FakeClock
) -> None:
    """sign_url(base_url=...) gives a URL under that base which GETs (or PUTs) the key with no token; a PUT
    bound to a length refuses another."""
    acme: TenantAPI = await connect(store, "acme")
    await acme.put("k", b"signed bytes")
    with serving(store.settings, clock=clock) as url:
        got = await acme.sign_url("k", base_url=f"{url}/")
        put = await acme.sign_url("up", "PUT", content_length=3, expires_in=60, base_url=url)
        assert got.url.startswith(f"{url}/v1/tenants/acme/objects/k?")
        async with httpx.AsyncClient(timeout=30) as http:
            assert (await http.get(got.url)).content == b"signed bytes"
            assert (await http.put(put.url, content=b"four", headers=put.headers)).status_code == 403
            assert (await http.put(put.url, content=b"new", headers=put.headers)).status_code == 201
    assert await acme.get("up") == b"new"
    assert put.method == "PUT"
    assert (put.expires_at - clock()).total_seconds() <= 60


async def test_an_in_process_signed_url_is_a_path_without_a_base(store: BlobStore) -> None:
    """Tenant serves no HTTP: without base_url its URL is the path and query from the API's root."""
    signed = await store.tenant("acme").sign_url("a key", "PUT", digest=digest_of(b"x"))
    assert signed.url.startswith("/v1/tenants/acme/objects/a%20key?")
    assert signed.headers == {"x-blobstore-digest": digest_of(b"x")}
