"""The HTTP service's own semantics, over a real uvicorn server: ETag, conditional requests, HEAD, Range,
conditional PUT, digests, put-by-digest, metadata headers, keys in paths, problem documents, tokens."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from blobstore import BlobStore
from blobstore.auth import tokens
from tests.support.access_log import access_log
from tests.support.digests import digest_of
from tests.support.live_server import serving
from tests.support.stores import FakeClock
from tests.support.workers import data_objects, rows

DATA = bytes(range(256)) * 40  # 10240 bytes


@dataclass
class Api:
    """A live server of the test's store, with an all-scopes token of tenant ``acme``."""

    store: BlobStore
    url: str
    http: httpx.AsyncClient
    token: str

    def auth(self, token: str | None = None) -> dict[str, str]:
        return {"authorization": f"Bearer {token or self.token}"}

    async def put(self, key: str, data: bytes, **headers: str) -> httpx.Response:
        return await self.http.put(f"/v1/tenants/acme/objects/{key}", content=data, headers=self.auth() | headers)

    async def get(self, key: str, **headers: str) -> httpx.Response:
        return await self.http.get(f"/v1/tenants/acme/objects/{key}", headers=self.auth() | headers)


@pytest.fixture
async def api(store: BlobStore, clock: FakeClock) -> AsyncIterator[Api]:
    token = await tokens.create(store.core, "acme", scopes=tokens.SCOPES)
    with serving(store.settings, clock=clock) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            yield Api(store, url, http, token.token)


def assert_problem(response: httpx.Response, status: int, code: str) -> None:
    """A problem document (RFC 9457) with this status and code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert set(body) == {"type", "title", "status", "detail", "code"}
    assert (body["status"], body["code"], body["type"]) == (status, code, f"urn:blobstore:error:{code}")


# --- PUT ------------------------------------------------------------------------------------------


async def test_put_answers_201_then_200_with_the_digest_as_etag(api: Api) -> None:
    """A new key is 201, a replaced one 200; both return the put's JSON and ETag = the quoted digest."""
    first = await api.put("k", b"one", **{"content-type": "text/plain", "x-blobstore-meta-user": "42"})
    assert first.status_code == 201
    assert first.headers["etag"] == f'"{digest_of(b"one")}"'
    body = first.json()
    assert (body["key"], body["size"], body["content_type"], body["metadata"]) == ("k", 3, "text/plain", {"user": "42"})
    second = await api.put("k", b"two")
    assert second.status_code == 200
    assert second.json()["digest"] == digest_of(b"two")


async def test_if_none_match_star_refuses_an_existing_key(api: Api) -> None:
    """PUT with If-None-Match: * is 412 AlreadyExists when the key exists and changes nothing; 201 otherwise."""
    assert (await api.put("k", b"one", **{"if-none-match": "*"})).status_code == 201
    assert_problem(await api.put("k", b"two", **{"if-none-match": "*"}), 412, "AlreadyExists")
    assert (await api.get("k")).content == b"one"
    assert_problem(await api.put("k", b"two", **{"if-none-match": '"abc"'}), 400, "InvalidInput")


async def test_a_digest_mismatch_is_422_and_stores_nothing(api: Api) -> None:
    """X-Blobstore-Digest that the body does not hash to: 422 IntegrityError, no key, no blob, no object."""
    response = await api.put("k", b"actual", **{"x-blobstore-digest": digest_of(b"expected")})
    assert_problem(response, 422, "IntegrityError")
    assert await rows(api.store, "SELECT key FROM refs") == []
    assert await data_objects(api.store) == []
    ok = await api.put("k", b"actual", **{"x-blobstore-digest": digest_of(b"actual")})
    assert ok.status_code == 201


async def test_put_by_digest_needs_bytes_this_tenant_holds(api: Api) -> None:
    """X-Blobstore-Copy-Digest without a body binds the key to held bytes; unknown digests are 404; a body is 400."""
    held = (await api.put("a", b"payload")).json()["digest"]
    response = await api.put("b", b"", **{"x-blobstore-copy-digest": held, "content-type": "text/x"})
    assert response.status_code == 201
    assert (response.json()["digest"], response.json()["deduplicated"]) == (held, True)
    assert (await api.get("b")).content == b"payload"
    assert_problem(await api.put("c", b"", **{"x-blobstore-copy-digest": digest_of(b"nobody")}), 404, "NotFound")
    assert_problem(await api.put("c", b"body", **{"x-blobstore-copy-digest": held}), 400, "InvalidInput")
    assert_problem(await api.put("c", b"", **{"x-blobstore-copy-digest": "xyz"}), 400, "InvalidInput")


async def test_metadata_headers_round_trip_any_name_and_value(api: Api) -> None:
    """Metadata names with capitals and spaces and values with %, spaces and unicode survive PUT and GET."""
    from blobstore import wire

    metadata = {"User Id": "héllo 50% done", "plain": "42", "Ünï": " padded "}
    response = await api.put("k", b"x", **wire.metadata_headers(metadata))
    assert response.json()["metadata"] == metadata
    got = await api.get("k")
    assert wire.metadata_from_headers(got.headers.items()) == metadata
    assert got.headers["x-blobstore-meta-plain"] == "42"


async def test_a_short_body_is_refused_and_stores_nothing(api: Api) -> None:
    """A client that declares more bytes than it sends and hangs up leaves no key, blob, object or tenant
    once the server is done with its request."""
    host, port = httpx.URL(api.url).host, httpx.URL(api.url).port
    head = (
        f"PUT /v1/tenants/acme/objects/partial HTTP/1.1\r\nHost: {host}\r\nX-Request-Id: short-body\r\n"
        f"Authorization: Bearer {api.token}\r\nContent-Length: {4 * 1024 * 1024}\r\n\r\n"
    ).encode()
    with access_log() as log:
        _reader, writer = await asyncio.open_connection(host, port)
        writer.write(head + b"x" * (1024 * 1024))
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        line = await log.line_of("short-body")
    assert 400 <= line["status"] < 500, line  # refused, not failed
    assert (await api.get("partial")).status_code == 404
    assert await rows(api.store, "SELECT id FROM blobs") == []
    assert await data_objects(api.store) == []


# --- GET and HEAD ---------------------------------------------------------------------------------


async def test_get_and_head_describe_the_object(api: Api) -> None:
    """GET streams the bytes with ETag, Content-Length, Content-Type and Accept-Ranges; HEAD has the same headers."""
    await api.put("k", DATA, **{"content-type": "application/x-test"})
    got = await api.get("k")
    assert (got.status_code, got.content) == (200, DATA)
    headed = await api.http.head("/v1/tenants/acme/objects/k", headers=api.auth())
    assert headed.status_code == 200
    for name in ("etag", "content-length", "content-type", "accept-ranges", "last-modified"):
        assert headed.headers[name] == got.headers[name], name
    assert (got.headers["content-length"], got.headers["accept-ranges"]) == (str(len(DATA)), "bytes")


async def test_if_none_match_gives_304(api: Api) -> None:
    """GET and HEAD with the current ETag (or *) are 304 without a body; another ETag gets the object."""
    etag = (await api.put("k", DATA)).headers["etag"]
    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        response = await api.get("k", **{"if-none-match": header})
        assert (response.status_code, response.content, response.headers["etag"]) == (304, b"", etag)
    head = await api.http.head("/v1/tenants/acme/objects/k", headers=api.auth() | {"if-none-match": etag})
    assert head.status_code == 304
    assert (await api.get("k", **{"if-none-match": '"other"'})).content == DATA


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=0-0", 0, 0),
        ("bytes=10-19", 10, 19),
        ("bytes=10000-", 10000, len(DATA) - 1),
        ("bytes=-100", len(DATA) - 100, len(DATA) - 1),
        ("bytes=-999999", 0, len(DATA) - 1),
        ("bytes=10200-999999999", 10200, len(DATA) - 1),
        ("BYTES = 5 - 9", 5, 9),
    ],
)
async def test_one_range_gives_206_with_content_range(api: Api, header: str, first: int, last: int) -> None:
    """bytes=a-b, a- and -n give 206 with exactly those bytes and Content-Range (clamped to the object)."""
    await api.put("k", DATA)
    response = await api.get("k", range=header)
    assert response.status_code == 206
    assert response.content == DATA[first : last + 1]
    assert response.headers["content-range"] == f"bytes {first}-{last}/{len(DATA)}"
    assert response.headers["content-length"] == str(last - first + 1)


@pytest.mark.parametrize("header", ["bytes=10240-", "bytes=99999-100000", "bytes=-0"])
async def test_unsatisfiable_ranges_give_416(api: Api, header: str) -> None:
    """A range starting past the end (or the last 0 bytes) is 416 with Content-Range: bytes */size."""
    await api.put("k", DATA)
    response = await api.get("k", range=header)
    assert_problem(response, 416, "RangeNotSatisfiable")
    assert response.headers["content-range"] == f"bytes */{len(DATA)}"


async def test_any_range_of_an_empty_object_is_416(api: Api) -> None:
    """An empty object has no satisfiable range; without Range it is a 200 with no bytes."""
    await api.put("empty", b"")
    assert (await api.get("empty", range="bytes=0-0")).status_code == 416
    assert (await api.get("empty", range="bytes=-5")).status_code == 416
    whole = await api.get("empty")
    assert (whole.status_code, whole.content) == (200, b"")


@pytest.mark.parametrize("header", ["bytes=0-1,5-6", "bytes=5-1", "items=0-5", "bytes=abc", "bytes=" + "9" * 40])
async def test_multiple_or_malformed_ranges_get_the_whole_object(api: Api, header: str) -> None:
    """Several ranges, a reversed range, another unit or bad syntax: the Range header is ignored (200, all bytes)."""
    await api.put("k", DATA)
    response = await api.get("k", range=header)
    assert (response.status_code, response.content) == (200, DATA)


async def test_a_damaged_object_never_arrives_complete(api: Api) -> None:
    """A whole GET of an object whose stored bytes were altered fails (422 before the body, or a cut-off body)."""
    from tests.support.workers import object_key_of

    # 4 MiB that do not compress (stored as they are): several frames, so the damage shows only in the last
    big = random.Random(4).randbytes(4 * 1024 * 1024)
    await api.put("big", big)
    await api.store.storage.write(await object_key_of(api.store, "acme", "big"), big[:-1] + b"!")
    with pytest.raises(httpx.RemoteProtocolError):
        await api.get("big")


async def test_a_damaged_small_object_is_a_problem_not_its_bytes(api: Api) -> None:
    """An object read whole within its first chunk is verified before its answer starts: damaged, it is a 422
    problem and none of its bytes; intact, it comes back with its length."""
    from tests.support.workers import object_key_of

    await api.put("small", DATA)
    whole = await api.get("small")
    assert (whole.status_code, whole.content, whole.headers["content-length"]) == (200, DATA, str(len(DATA)))
    await api.store.storage.write(await object_key_of(api.store, "acme", "small"), DATA[:-1] + b"!")
    assert_problem(await api.get("small"), 422, "IntegrityError")


# --- keys in paths --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key", ["with space", "100%", "a#b", "what?", "ünïcødé/日本", "a/b/c.txt", "%2e%2e", "+plus+", "semi;colon"]
)
async def test_keys_round_trip_through_percent_encoding(api: Api, key: str) -> None:
    """Keys with spaces, %, #, ?, unicode and / are stored and listed exactly as given."""
    from blobstore import wire

    response = await api.http.put(wire.object_path("acme", key), content=key.encode(), headers=api.auth())
    assert response.json()["key"] == key
    assert (await api.http.get(wire.object_path("acme", key), headers=api.auth())).content == key.encode()
    listed = await api.http.get("/v1/tenants/acme/objects", params={"prefix": key}, headers=api.auth())
    assert [item["key"] for item in listed.json()["items"]] == [key]


async def test_an_encoded_slash_is_a_slash(api: Api) -> None:
    """%2F in a key is the same key as a literal /."""
    await api.put("a%2Fb", b"x")
    assert (await api.get("a/b")).content == b"x"


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("a/%2e%2e/b", "a/../b"),
        ("%2E%2E", ".."),
        ("a/%2E/b", "a/./b"),
        ("%2fetc/passwd", "/etc/passwd"),
        ("a%2f%2fb", "a//b"),
        ("a//b", "a//b"),
        ("photos/", "photos/"),
    ],
)
async def test_encoded_dot_segments_and_slashes_reach_the_store_literally(api: Api, raw: str, key: str) -> None:
    """Percent-encoded '.' and '..' segments, a leading or doubled '/' and a trailing '/' name literal keys."""
    await api.put("b", b"the other b")
    assert (await api.put(raw, key.encode())).json()["key"] == key
    assert (await api.get(raw)).content == key.encode()
    assert sorted(await rows(api.store, "SELECT key FROM refs")) == sorted([("b",), (key,)])
    assert (await api.get("b")).content == b"the other b"
    assert (await api.http.delete(f"/v1/tenants/acme/objects/{raw}", headers=api.auth())).status_code == 204
    assert await rows(api.store, "SELECT key FROM refs") == [("b",)]


async def _raw_request(api: Api, method: str, target: str) -> tuple[int, str]:
    """Send ``method target`` exactly as written (no client resolves its dot segments); the status and body."""
    host, port = httpx.URL(api.url).host, httpx.URL(api.url).port
    reader, writer = await asyncio.open_connection(host, port)
    head = f"{method} {target} HTTP/1.1\r\nhost: {host}\r\nauthorization: Bearer {api.token}\r\n"
    writer.write(f"{head}content-length: 1\r\nconnection: close\r\n\r\nx".encode())
    response = await reader.read()
    writer.close()
    status_line, _, rest = response.decode().partition("\r\n")
    return int(status_line.split()[1]), rest.partition("\r\n\r\n")[2]


@pytest.mark.parametrize("raw", ["a/../b", "a/./b", "..", "./x", "a/.."])
async def test_unencoded_dot_segments_are_refused_with_a_hint(api: Api, raw: str) -> None:
    """A client that sends ``a/../b`` as is (most resolve it to ``b`` first) gets 400 InvalidKey saying to send
    ``%2E``, whatever the method; nothing is stored, and ``b`` is untouched."""
    await api.put("b", b"b")
    for method in ("PUT", "GET", "DELETE"):
        status, body = await _raw_request(api, method, f"/v1/tenants/acme/objects/{raw}")
        assert (status, '"code":"InvalidKey"' in body, "%2E" in body) == (400, True, True)
    assert await rows(api.store, "SELECT key FROM refs") == [("b",)]


@pytest.mark.parametrize("raw", ["%00", "a/%ff", "a%0ab"])
async def test_encoded_control_characters_and_non_utf8_are_invalid_key(api: Api, raw: str) -> None:
    """Percent-encoded NUL, control characters and non-UTF-8 are 400 InvalidKey."""
    for method in ("PUT", "GET", "DELETE"):
        response = await api.http.request(method, f"/v1/tenants/acme/objects/{raw}", headers=api.auth())
        assert_problem(response, 400, "InvalidKey")
    assert await rows(api.store, "SELECT key FROM refs") == []


# --- the other endpoints --------------------------------------------------------------------------


async def test_copy_list_delete_missing_and_usage(api: Api) -> None:
    """copy is 201, list pages with next_after, delete is 204 then 404, missing and usage answer for the tenant."""
    info = (await api.put("a", b"bytes")).json()
    copy = await api.http.post("/v1/tenants/acme/copy", json={"from": "a", "to": "b"}, headers=api.auth())
    assert (copy.status_code, copy.json()["key"], copy.json()["digest"]) == (201, "b", info["digest"])
    again = {"from": "a", "to": "b", "if_absent": True}
    assert_problem(await api.http.post("/v1/tenants/acme/copy", json=again, headers=api.auth()), 412, "AlreadyExists")
    page = (await api.http.get("/v1/tenants/acme/objects", params={"limit": 1}, headers=api.auth())).json()
    assert ([item["key"] for item in page["items"]], page["next_after"]) == (["a"], "a")
    params = {"limit": 1, "after": "a"}
    page = (await api.http.get("/v1/tenants/acme/objects", params=params, headers=api.auth())).json()
    assert ([item["key"] for item in page["items"]], page["next_after"]) == (["b"], None)
    probe = {"digests": [info["digest"], digest_of(b"other")]}
    missing = await api.http.post("/v1/tenants/acme/digests/missing", json=probe, headers=api.auth())
    assert missing.json() == {"missing": [digest_of(b"other")]}
    usage = (await api.http.get("/v1/tenants/acme/usage", headers=api.auth())).json()
    assert (usage["tenant"], usage["objects"], usage["logical_bytes"]) == ("acme", 2, 10)
    assert (await api.http.delete("/v1/tenants/acme/objects/a", headers=api.auth())).status_code == 204
    assert_problem(await api.http.delete("/v1/tenants/acme/objects/a", headers=api.auth()), 404, "NotFound")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/tenants/acme/copy", b"{not json"),
        ("POST", "/v1/tenants/acme/copy", b'{"from": 1, "to": "b"}'),
        ("POST", "/v1/tenants/acme/copy", b'{"from": "a", "to": "b", "extra": 1}'),
        ("POST", "/v1/tenants/acme/digests/missing", b'{"digests": ["nope"]}'),
        ("POST", "/v1/tenants/acme/digests/missing", b'{"digests": "x"}'),
        ("GET", "/v1/tenants/acme/objects?limit=0", b""),
        ("GET", "/v1/tenants/acme/objects?limit=x", b""),
        ("GET", "/v1/tenants/acme/objects?prefix=%00", b""),
    ],
)
async def test_bad_input_is_a_400_problem(api: Api, method: str, path: str, body: bytes) -> None:
    """Malformed JSON, wrong types, unknown fields, bad digests and bad query parameters are 400 problems."""
    response = await api.http.request(method, path, content=body, headers=api.auth())
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] in {"InvalidInput", "InvalidKey"}


async def test_unknown_routes_and_methods_are_problems(api: Api) -> None:
    """An unknown path is a 404 problem and an unsupported method a 405 problem."""
    assert_problem(await api.http.get("/nowhere"), 404, "NotFound")
    assert_problem(await api.http.post("/v1/tenants/acme/objects/k", headers=api.auth()), 405, "MethodNotAllowed")


async def test_health_readiness_and_openapi_need_no_token(api: Api) -> None:
    """/healthz, /readyz and /openapi.json answer without a token."""
    assert (await api.http.get("/healthz")).json() == {"status": "ok"}
    assert (await api.http.get("/readyz")).json() == {"status": "ready"}
    paths = (await api.http.get("/openapi.json")).json()["paths"]
    assert "/v1/tenants/{tenant}/objects/{key}" in paths


# --- tokens ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization", [None, "", "Bearer", "Basic dXNlcjpwdw==", "Bearer nonsense", "Bearer bst~acme~0~x"]
)
async def test_missing_or_malformed_tokens_are_401(api: Api, authorization: str | None) -> None:
    """No token, another scheme or a malformed token: 401 Unauthorized with WWW-Authenticate: Bearer."""
    headers = {} if authorization is None else {"authorization": authorization}
    response = await api.http.get("/v1/tenants/acme/objects", headers=headers)
    assert_problem(response, 401, "Unauthorized")
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_revoked_and_expired_tokens_are_401_on_every_server(api: Api, clock: FakeClock) -> None:
    """A revoked token is refused at once by every server; an expired one from its expiry on."""
    short = await tokens.create(api.store.core, "acme", scopes=["read"], expires_in=timedelta(minutes=5))
    with serving(api.store.settings, clock=clock) as other_url:
        async with httpx.AsyncClient(base_url=other_url) as other:
            for http in (api.http, other):
                assert (await http.get("/v1/tenants/acme/objects", headers=api.auth())).status_code == 200
            token_id = api.token.split("~")[2]
            await tokens.revoke(api.store.core, token_id)
            for http in (api.http, other):
                assert_problem(await http.get("/v1/tenants/acme/objects", headers=api.auth()), 401, "Unauthorized")
            assert (await other.get("/v1/tenants/acme/objects", headers=api.auth(short.token))).status_code == 200
            clock.advance(300)
            assert (await other.get("/v1/tenants/acme/objects", headers=api.auth(short.token))).status_code == 401


async def test_a_token_without_the_scope_is_403(api: Api) -> None:
    """A read-only token may read but gets 403 Forbidden for put, copy and delete."""
    await api.put("k", b"x")
    reader = (await tokens.create(api.store.core, "acme", scopes=["read"])).token
    assert (await api.http.get("/v1/tenants/acme/objects/k", headers=api.auth(reader))).status_code == 200
    for method, path in [("PUT", "objects/k"), ("DELETE", "objects/k"), ("POST", "copy")]:
        response = await api.http.request(method, f"/v1/tenants/acme/{path}", headers=api.auth(reader))
        assert_problem(response, 403, "Forbidden")
    assert (await api.get("k")).content == b"x"


def test_serve_command_serves_a_store(tmp_path: Path) -> None:
    """`blobstore serve` starts a server that answers /healthz and a token's requests."""
    import subprocess
    import sys
    import time

    from tests.support.cli_helpers import invoke, process_env

    token = invoke(["token", "create", "acme"], home=tmp_path).ok().stdout.strip()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = tmp_path / "serve.log"
    with log.open("wb") as stderr:
        server = subprocess.Popen(
            [sys.executable, "-m", "blobstore", "serve", "--port", str(port)],
            env=process_env(tmp_path),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                assert server.poll() is None, log.read_text()
                assert time.monotonic() < deadline
                time.sleep(0.1)
        headers = {"authorization": f"Bearer {token}"}
        assert httpx.put(f"{url}/v1/tenants/acme/objects/k", content=b"hi", headers=headers).status_code == 201
        assert httpx.get(f"{url}/v1/tenants/acme/objects/k", headers=headers).content == b"hi"
    finally:
        server.terminate()
        server.wait(timeout=30)


async def test_a_put_over_quota_is_413_and_stores_nothing(api: Api) -> None:
    """A put past the tenant's object limit is 413 QuotaExceeded; the key does not appear."""
    await api.store.set_quota("acme", max_objects=1)
    assert (await api.put("first", b"1")).status_code == 201
    assert_problem(await api.put("second", b"2"), 413, "QuotaExceeded")
    assert (await api.get("second")).status_code == 404


def test_serve_refuses_a_bad_configuration_in_one_line(tmp_path: Path) -> None:
    """`blobstore serve` with an unusable storage URL fails before listening: one line naming the variable."""
    from tests.support.cli_helpers import invoke

    invoke(["serve", "--storage", "ftp://nowhere"], home=tmp_path).failed("BLOBSTORE_STORAGE_URL")
