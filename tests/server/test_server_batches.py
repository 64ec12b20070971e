"""The batch endpoints' own HTTP: the framed body of a batch put (stored only once it has all arrived intact),
per-item statuses and problem documents, the body limit, and the scopes each endpoint needs."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from blobstore import BlobInfo, BlobStore, InvalidInput, PutItem, client, wire
from blobstore.auth import tokens
from blobstore.client import BlobClient
from blobstore.server import batches
from tests.support.live_server import serving
from tests.support.stores import FakeClock, StoreFactory
from tests.support.workers import check_invariants, data_objects

URL = "/v1/tenants/acme/batch"


@dataclass
class Api:
    """A live server of a SQLite store, with a client and an all-scopes token of tenant ``acme``."""

    store: BlobStore
    http: httpx.AsyncClient
    token: str

    async def post(self, operation: str, token: str | None = None, **kwargs: object) -> httpx.Response:
        headers = {"authorization": f"Bearer {token or self.token}"}
        return await self.http.post(f"{URL}/{operation}", headers=headers, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
async def api(open_store: StoreFactory, clock: FakeClock) -> AsyncIterator[Api]:
    store = await open_store("sqlite-local")
    token = await tokens.create(store, "acme", scopes=tokens.SCOPES)
    with serving(store.settings, clock=clock) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            yield Api(store, http, token.token)


def framed(items: list[dict[str, object]], *datas: bytes, chunk: int = 3) -> bytes:
    """A batch put body: the manifest line, then each data in chunks of ``chunk`` bytes."""
    body = json.dumps({"items": items}).encode() + b"\n"
    for data in datas:
        for start in range(0, len(data), chunk):
            piece = data[start : start + chunk]
            body += wire.batch_chunk_head(len(piece)) + piece
        body += wire.BATCH_ITEM_END
    return body


async def test_each_item_answers_with_its_single_requests_status(api: Api) -> None:
    """201 new, 200 replaced, 412 AlreadyExists and 400 InvalidKey as problem documents, in order."""
    await api.store.tenant("acme").put("old", b"old bytes")
    items: list[dict[str, object]] = [
        {"key": "new", "content_type": "text/plain", "metadata": {"m": "1"}},
        {"key": "old"},
        {"key": "old2", "if_absent": True},
        {"key": "bad\u0007"},
    ]
    await api.store.tenant("acme").put("old2", b"x")
    response = await api.post("put", content=framed(items, b"new bytes", b"replacing", b"refused", b"bad"))
    assert response.status_code == 200, response.text
    answers = response.json()["items"]
    assert [answer["status"] for answer in answers] == [201, 200, 412, 400]
    assert answers[0]["object"]["metadata"] == {"m": "1"}
    assert answers[0]["object"]["size"] == 9
    assert [answers[2]["problem"]["code"], answers[3]["problem"]["code"]] == ["AlreadyExists", "InvalidKey"]
    assert answers[2]["problem"]["type"] == "urn:blobstore:error:AlreadyExists"
    assert await api.store.tenant("acme").get("old") == b"replacing"
    await check_invariants(api.store)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(framed([{"key": "a"}, {"key": "b"}], b"first")[:-1], id="ends-inside-the-items"),
        pytest.param(framed([{"key": "a"}, {"key": "b"}], b"first", b"second") + b"3\nabc", id="goes-on-after"),
        pytest.param(framed([{"key": "a"}], b"first").replace(b"3\n", b"3;x\n", 1), id="bad-chunk-length"),
        pytest.param(b'{"items": [{"key": "a"}]', id="no-manifest-line"),
        pytest.param(b'{"items": [{"key": "a", "size": 1}]}\n0\n', id="unknown-manifest-field"),
        pytest.param(framed([{"key": "a"}], b"12345")[:-7], id="ends-inside-a-chunk"),
    ],
)
async def test_a_malformed_or_cut_body_stores_nothing(api: Api, body: bytes) -> None:
    """Nothing is stored unless the whole body arrived intact: the items before the damage are not kept."""
    response = await api.post("put", content=body)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "InvalidInput"
    assert len(await api.store.tenant("acme").list()) == 0
    assert await data_objects(api.store) == []


@pytest.fixture
def small_limit(monkeypatch: pytest.MonkeyPatch) -> int:
    """The batch body limit lowered to 100 bytes (the server runs in this process)."""
    monkeypatch.setattr(batches, "MAX_BATCH_BODY", 100)
    return 100


async def test_a_body_over_the_limit_is_413_and_stores_nothing(api: Api, small_limit: int) -> None:
    """Refused from its Content-Length before it is read, or (chunked) at the piece that passes the limit."""
    body = framed([{"key": "a"}, {"key": "b"}], b"x" * 10, b"y" * small_limit)
    declared = await api.post("put", content=body)
    assert declared.status_code == 413, declared.text
    assert declared.json()["code"] == "ObjectTooLarge"

    async def streamed() -> AsyncIterator[bytes]:
        yield body

    chunked = await api.post("put", content=streamed())
    assert chunked.status_code == 413, chunked.text
    assert len(await api.store.tenant("acme").list()) == 0


async def test_each_endpoint_needs_its_scope_and_the_tenants_token(api: Api) -> None:
    """put: write; delete: delete; stat: read. Another tenant's token: 403 whatever its scopes."""
    reader = (await tokens.create(api.store, "acme", scopes=["read"])).token
    writer = (await tokens.create(api.store, "acme", scopes=["write"])).token
    other = (await tokens.create(api.store, "other", scopes=tokens.SCOPES)).token
    keys = {"json": {"keys": ["a"]}}
    cases = [
        ("put", reader, {"content": framed([{"key": "a"}], b"a")}, "'write'"),
        ("delete", reader, keys, "'delete'"),
        ("stat", writer, keys, "'read'"),
        ("stat", other, keys, "not for this tenant"),
    ]
    for operation, token, kwargs, named in cases:
        response = await api.post(operation, token, **kwargs)
        assert response.status_code == 403, (operation, response.text)
        assert named in response.json()["detail"]
    assert len(await api.store.tenant("acme").list()) == 0


async def test_delete_and_stat_answer_204_200_404_and_400(api: Api) -> None:
    """delete: 204 deleted, 404 absent; stat: 200 with the object, 404 absent, 400 invalid key."""
    await api.store.tenant("acme").put("a", b"value")
    stat = (await api.post("stat", json={"keys": ["a", "missing", "bad\u0007"]})).json()["items"]
    assert [answer["status"] for answer in stat] == [200, 404, 400]
    assert stat[0]["object"]["key"] == "a"
    deleted = (await api.post("delete", json={"keys": ["a", "a"]})).json()["items"]
    assert [answer["status"] for answer in deleted] == [204, 404]
    assert deleted[1]["problem"]["code"] == "NotFound"
    too_many = await api.post("stat", json={"keys": ["a"] * 1001})
    assert too_many.status_code == 400


async def test_the_client_splits_a_batch_at_its_body_budget(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """BlobClient.put_many sends items of known length in as few batch requests as BATCH_BYTES allows, and an
    item of unknown length or over the budget as a PUT of its own, in its turn; outcomes stay in order."""
    monkeypatch.setattr(client, "BATCH_BYTES", 10)
    sent: list[tuple[str, str]] = []
    send = httpx.AsyncClient.send

    async def recording(self: httpx.AsyncClient, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        sent.append((request.method, request.url.path.rsplit("/", 2)[-2]))
        return await send(self, request, **kwargs)

    monkeypatch.setattr(httpx.AsyncClient, "send", recording)

    async def stream() -> AsyncIterator[bytes]:
        yield b"streamed"

    items = [
        PutItem("a", b"12345"),
        PutItem("b", b"67890"),
        PutItem("c", b"abcdef"),
        PutItem("s", stream()),
        PutItem("big", b"x" * 11),
        PutItem("a", b"repeat"),
        PutItem("d", b"last"),
    ]
    async with BlobClient(str(api.http.base_url), api.token) as acme:
        outcomes = await acme.put_many(items)
    assert [type(outcome) for outcome in outcomes] == [BlobInfo] * 5 + [InvalidInput, BlobInfo]
    assert [path for _method, path in sent] == ["batch", "batch", "objects", "objects", "batch"]
    assert await api.store.tenant("acme").get("s") == b"streamed"
    assert sorted(info.key for info in await api.store.tenant("acme").list()) == ["a", "b", "big", "c", "d", "s"]
