"""A put reports whether it replaced a key (``BlobInfo.replaced``), decided by the binding in the put's own
transaction; the HTTP PUT answers 201 or 200 from that alone: no lookup before the put, no race."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from blobstore import BlobInfo, BlobStore, PutItem
from blobstore.accounting import quotas
from blobstore.auth import tokens
from blobstore.client import BlobClient
from blobstore.server import create_app
from blobstore.storage.base import ObjectStorage, Source
from blobstore.testing.faults import FaultyStorage
from blobstore.testing.statements import statements_sent
from tests.store.test_put_statements import DEDUP_PUT, budget
from tests.support.live_server import serving
from tests.support.stores import FakeClock, StoreFactory

#: The reads an HTTP PUT makes before its put: the token (which says whether its tenant has a quota), then, only
#: for a tenant with a quota, its quota room.
AUTHENTICATE, ALLOWANCE = 1, 1


class WritesMeet(FaultyStorage):
    """Holds every object write until the ``meeting``'s parties have all begun one, so racing puts have all made
    every decision that comes before their bytes reach storage."""

    def __init__(self, inner: ObjectStorage, meeting: asyncio.Barrier) -> None:
        super().__init__(inner)
        self.meeting = meeting

    async def write(self, key: str, source: Source) -> None:
        await asyncio.wait_for(self.meeting.wait(), 60)
        await super().write(key, source)


@contextlib.asynccontextmanager
async def asgi_client(store: BlobStore) -> AsyncIterator[httpx.AsyncClient]:
    """The app in this process (ASGI transport) over ``store``, as tenant ``acme`` with every scope."""
    token = (await tokens.create(store.core, "acme", scopes=tokens.SCOPES)).token
    app = create_app(store)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        headers = {"authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://blobstore", headers=headers) as http:
            yield http


async def test_a_put_reports_whether_it_replaced_the_key(store: BlobStore) -> None:
    """put, put by digest, copy and put_many say whether the key held a value before them."""
    acme = store.tenant("acme")
    first = await acme.put("k", b"first")
    assert not first.replaced
    second = await acme.put("k", b"second")
    assert second.replaced
    assert (await acme.put("k", b"second")).replaced  # the same bytes again: still a replacement
    assert not (await acme.put("by-digest", digest=second.digest)).replaced
    assert (await acme.put("by-digest", digest=second.digest)).replaced
    assert not (await acme.copy("k", "copy")).replaced
    assert (await acme.copy("by-digest", "copy")).replaced
    outcomes = await acme.put_many([PutItem("k", b"third"), PutItem("fresh", b"fourth")])
    assert [isinstance(outcome, BlobInfo) and outcome.replaced for outcome in outcomes] == [True, False]
    assert "replaced" not in first.to_dict()  # the JSON of put --json is as documented; HTTP says 200/201


async def test_the_client_reports_whether_a_put_replaced_the_key(store: BlobStore, clock: FakeClock) -> None:
    """BlobClient.put takes ``replaced`` from the server's 200/201, by body and by digest alike."""
    token = (await tokens.create(store.core, "acme", scopes=tokens.SCOPES)).token
    with serving(store.settings, clock=clock) as url:
        async with BlobClient(url, token) as acme:
            assert not (await acme.put("k", b"first")).replaced
            second = await acme.put("k", b"second")
            assert second.replaced
            assert not (await acme.put("by-digest", digest=second.digest)).replaced
            assert (await acme.put("by-digest", digest=second.digest)).replaced


async def test_an_http_put_is_201_for_a_new_key_then_200_for_the_same_key(store: BlobStore, clock: FakeClock) -> None:
    """Over a real server: 201 creates a key, 200 replaces it, by body and by digest alike."""
    token = (await tokens.create(store.core, "acme", scopes=tokens.SCOPES)).token
    with serving(store.settings, clock=clock) as url:
        headers = {"authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as http:
            created = await http.put("/v1/tenants/acme/objects/k", content=b"first")
            replaced = await http.put("/v1/tenants/acme/objects/k", content=b"second")
            by_digest = {"x-blobstore-copy-digest": replaced.json()["digest"]}
            digest_created = await http.put("/v1/tenants/acme/objects/d", headers=by_digest)
            digest_replaced = await http.put("/v1/tenants/acme/objects/d", headers=by_digest)
            absent = await http.put("/v1/tenants/acme/objects/new", content=b"x", headers={"if-none-match": "*"})
    statuses = [r.status_code for r in (created, replaced, digest_created, digest_replaced, absent)]
    assert statuses == [201, 200, 201, 200, 201]


@pytest.mark.parametrize("quota", [False, True])
async def test_an_http_put_looks_nothing_up_before_the_put(store: BlobStore, quota: bool) -> None:
    """An HTTP PUT sends the token's read, the quota room's read if the tenant has a quota, and the put's own
    statements: no more."""
    await store.tenant("acme").put("seed", b"shared bytes")
    if quota:
        await store.set_quota("acme", max_bytes=10**9)
    async with asgi_client(store) as http:
        with statements_sent(store) as sent:
            response = await http.put("/v1/tenants/acme/objects/again", content=b"shared bytes")
        assert response.status_code == 201
        assert response.json()["deduplicated"]
    assert len(sent) == AUTHENTICATE + (ALLOWANCE if quota else 0) + budget(store, DEDUP_PUT), sent


async def test_a_quota_set_after_the_token_was_read_still_refuses_the_put(store: BlobStore) -> None:
    """The token said the tenant had no quota, so the body was read unchecked; the put's binding, under the
    tenant's lock, still refuses what the quota set meanwhile does not allow, and stores nothing."""
    acme = store.tenant("acme")
    await acme.put("seed", b"x" * 100)
    original = quotas.allowance

    async def quota_set_meanwhile(*args: Any, **kwargs: Any) -> quotas.Allowance:
        await store.set_quota("acme", max_bytes=150)
        return await original(*args, **kwargs)

    async with asgi_client(store) as http:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(quotas, "allowance", quota_set_meanwhile)
            response = await http.put("/v1/tenants/acme/objects/big", content=b"y" * 100)
    assert response.status_code == 413
    assert "QuotaExceeded" in response.text
    assert not await acme.exists("big")
    assert (await store.quota("acme")).used_bytes == 100


async def test_of_two_racing_puts_of_a_new_key_exactly_one_creates_it(
    open_store: StoreFactory, deployment: str
) -> None:
    """Two servers (as two processes: one server's puts of one key take turns, blobstore.core.group_commit) PUT
    a new key at once, both past every check before either binds it: one answers 201, the other 200."""
    meeting = asyncio.Barrier(2)
    stores = [await open_store(deployment), await open_store(deployment)]
    writes = []
    for store in stores:
        store.core = replace(store.core, storage=WritesMeet(store.storage, meeting))
        writes.append(store.core.storage)
    async with asgi_client(stores[0]) as one, asgi_client(stores[1]) as other:
        first, second = await asyncio.gather(
            one.put("/v1/tenants/acme/objects/contested", content=b"one writer's bytes"),
            other.put("/v1/tenants/acme/objects/contested", content=b"the other writer's bytes"),
        )
    assert [storage.count("write") for storage in writes] == [1, 1]
    assert sorted([first.status_code, second.status_code]) == [200, 201], [first.text, second.text]
    last = first if first.status_code == 200 else second
    assert (await stores[0].tenant("acme").stat("contested")).digest == last.json()["digest"]
