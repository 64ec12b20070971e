"""An unreachable storage is a 503 problem with Retry-After, over HTTP, and a failed upload stores nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest

from blobstore import BlobStore, StorageUnavailable
from blobstore.auth import tokens
from blobstore.server import create_app
from blobstore.testing.faults import Fault, FaultyStorage
from tests.support.workers import data_objects, rows


@pytest.fixture
async def faulty_http(store: BlobStore) -> AsyncIterator[tuple[httpx.AsyncClient, FaultyStorage]]:
    """The app in this process (ASGI transport) over the store, its storage wrapped to inject faults."""
    await store.tenant("acme").put("k", b"stored bytes")
    storage = FaultyStorage(store.storage)
    store.core = replace(store.core, storage=storage)
    token = (await tokens.create(store.core, "acme", scopes=tokens.SCOPES)).token
    app = create_app(store)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        headers = {"authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://blobstore", headers=headers) as http:
            yield http, storage


async def test_a_failing_read_is_503_with_retry_after(faulty_http: tuple[httpx.AsyncClient, FaultyStorage]) -> None:
    """A storage read that fails with StorageUnavailable answers 503, Retry-After and code StorageUnavailable."""
    http, storage = faulty_http
    fault = storage.inject(Fault("read", error=StorageUnavailable("injected outage")))
    response = await http.get("/v1/tenants/acme/objects/k")
    assert (response.status_code, response.json()["code"]) == (503, "StorageUnavailable")
    assert response.headers["retry-after"] == "1"
    assert fault.hits == 1
    assert (await http.get("/v1/tenants/acme/objects/k")).content == b"stored bytes"


async def test_a_failing_upload_is_503_and_stores_nothing(
    store: BlobStore, faulty_http: tuple[httpx.AsyncClient, FaultyStorage]
) -> None:
    """A storage write that fails answers 503; no key, no new blob and no new object remain."""
    http, storage = faulty_http
    objects = await data_objects(store)
    storage.inject(Fault("write", error=StorageUnavailable("injected outage"), times=None))
    response = await http.put("/v1/tenants/acme/objects/new", content=b"new bytes")
    assert (response.status_code, response.json()["code"]) == (503, "StorageUnavailable")
    assert await rows(store, "SELECT key FROM refs ORDER BY key") == [("k",)]
    assert await data_objects(store) == objects
