"""Signed URLs over real servers: what they bind, expiry, Range, PUT replay, scopes, several servers, rotation."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import pytest

from blobstore import BlobStore
from blobstore.auth import signing, tokens
from blobstore.client import BlobClient
from blobstore.errors import Forbidden, InvalidInput, NotFound
from blobstore.testing.statements import sql_sent
from tests.support.cli_helpers import invoke
from tests.support.digests import digest_of
from tests.support.live_server import serving
from tests.support.stores import FakeClock, StoreFactory

DATA = bytes(range(256)) * 16  # 4096 bytes


@dataclass
class Signer:
    """A live server of the test's store, a client with an all-scopes token of ``acme``, and plain HTTP."""

    store: BlobStore
    url: str
    client: BlobClient
    http: httpx.AsyncClient
    token: str


@contextlib.asynccontextmanager
async def signer_on(
    store: BlobStore, clock: FakeClock, scopes: tuple[str, ...] = tokens.SCOPES
) -> AsyncIterator[Signer]:
    token = await tokens.create(store.core, "acme", scopes=scopes)
    with serving(store.settings, clock=clock) as url:
        async with BlobClient(url, token.token) as client, httpx.AsyncClient(timeout=30) as http:
            yield Signer(store, url, client, http, token.token)


@pytest.fixture
async def signer(store: BlobStore, clock: FakeClock) -> AsyncIterator[Signer]:
    await tokens.create(store.core, "other")  # a second tenant exists, so a changed tenant names a real one
    async with signer_on(store, clock) as handle:
        yield handle


def changed_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query)) | changes
    return urlunsplit(parts._replace(query=urlencode(query)))


def changed_path(url: str, old: str, new: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=parts.path.replace(old, new)))


def flipped(signature: str) -> str:
    return ("A" if signature[0] != "A" else "B") + signature[1:]


# --- GET ------------------------------------------------------------------------------------------


async def test_a_signed_get_needs_no_token_and_honours_range(signer: Signer) -> None:
    """The URL alone reads the key: the whole object, and one range of it (206)."""
    await signer.client.put("docs/a b.bin", DATA, content_type="application/x-test")
    signed = await signer.client.sign_url("docs/a b.bin")
    assert signed.method == "GET"
    whole = await signer.http.get(signed.url)
    assert (whole.status_code, whole.content, whole.headers["etag"]) == (200, DATA, f'"{digest_of(DATA)}"')
    part = await signer.http.get(signed.url, headers={"range": "bytes=10-19"})
    assert (part.status_code, part.content) == (206, DATA[10:20])
    assert part.headers["content-range"] == f"bytes 10-19/{len(DATA)}"


@pytest.mark.parametrize(
    "change",
    ["method", "tenant", "key", "expires", "signature", "key_id", "unknown_key_id"],
)
async def test_a_changed_get_url_is_forbidden(signer: Signer, change: str) -> None:
    """Each field the signature covers, changed alone, gets 403 (and the unchanged URL works)."""
    await signer.client.put("k", DATA)
    await signer.store.tenant("other").put("k", b"theirs")
    signed = await signer.client.sign_url("k")
    assert (await signer.http.get(signed.url)).status_code == 200
    query = dict(parse_qsl(urlsplit(signed.url).query))
    other_key = (await signing.rotate(signer.store.core)).id  # a real key, but not the one that signed
    method, url = "GET", signed.url
    if change == "method":
        method = "PUT"
    elif change == "tenant":
        url = changed_path(url, "/tenants/acme/", "/tenants/other/")
    elif change == "key":
        await signer.client.put("l", DATA)
        url = changed_path(url, "/objects/k", "/objects/l")
    elif change == "expires":
        url = changed_query(url, expires=str(int(query["expires"]) + 1))
    elif change == "signature":
        url = changed_query(url, signature=flipped(query["signature"]))
    elif change == "key_id":
        url = changed_query(url, key_id=other_key)
    else:
        url = changed_query(url, key_id="0" * 16)
    response = await signer.http.request(method, url, content=DATA if method == "PUT" else None)
    assert response.status_code == 403, response.text
    assert response.json()["code"] == "Forbidden"
    assert await signer.client.get("k") == DATA


async def test_an_expired_url_is_forbidden(signer: Signer, clock: FakeClock) -> None:
    """A URL works until its expiry second and gets 403 from then on."""
    await signer.client.put("k", DATA)
    signed = await signer.client.sign_url("k", expires_in=60)
    clock.advance(59)
    assert (await signer.http.get(signed.url)).status_code == 200
    clock.advance(1)
    response = await signer.http.get(signed.url)
    assert (response.status_code, response.json()["code"]) == (403, "Forbidden")


async def test_a_malformed_signed_url_is_forbidden_not_unauthorized(signer: Signer) -> None:
    """A query with a signature is judged as a signed URL, whatever else it lacks."""
    response = await signer.http.get(f"{signer.url}/v1/tenants/acme/objects/k?signature=abc")
    assert response.status_code == 403


# --- PUT ------------------------------------------------------------------------------------------


async def test_a_signed_put_stores_and_dedups(signer: Signer) -> None:
    """A PUT URL uploads with no token; the bytes dedup against what the tenant already holds."""
    await signer.client.put("first", DATA)
    signed = await signer.client.sign_url("second", "PUT", content_length=len(DATA), content_type="image/png")
    assert signed.headers == {"content-type": "image/png"}
    response = await signer.http.put(signed.url, content=DATA, headers=signed.headers)
    assert response.status_code == 201, response.text
    assert response.json()["deduplicated"] is True
    info = await signer.client.stat("second")
    assert (info.digest, info.content_type) == (digest_of(DATA), "image/png")


@pytest.mark.parametrize(
    "change", ["query_length", "query_type", "sent_length", "sent_type", "missing_type", "sent_digest"]
)
async def test_a_put_must_send_what_its_url_binds(signer: Signer, change: str) -> None:
    """Length, type and digest bound to a PUT URL: a changed URL field or a request that sends another
    value gets 403 and stores nothing."""
    digest = digest_of(DATA)
    signed = await signer.client.sign_url("k", "PUT", content_length=len(DATA), content_type="image/png", digest=digest)
    body, headers, url = DATA, dict(signed.headers), signed.url
    if change == "query_length":
        body, url = DATA + b"!", changed_query(url, content_length=str(len(DATA) + 1))
    elif change == "query_type":
        headers["content-type"], url = "text/plain", changed_query(url, content_type="text/plain")
    elif change == "sent_length":
        body = DATA + b"!"
    elif change == "sent_type":
        headers["content-type"] = "text/plain"
    elif change == "missing_type":
        del headers["content-type"]
    else:
        headers["x-blobstore-digest"] = digest_of(b"other")
    response = await signer.http.put(url, content=body, headers=headers)
    assert response.status_code == 403, response.text
    assert not await signer.client.exists("k")
    assert (await signer.http.put(signed.url, content=DATA, headers=signed.headers)).status_code == 201


async def test_replaying_a_put_url_with_the_same_bytes_is_harmless(signer: Signer) -> None:
    """The same bytes again: the key keeps them (200 replaced, deduplicated); other bytes are refused when
    the length is bound (403), and when the digest is bound even at the same length (422); nothing changes."""
    signed = await signer.client.sign_url("k", "PUT", content_length=len(DATA))
    assert (await signer.http.put(signed.url, content=DATA)).status_code == 201
    again = await signer.http.put(signed.url, content=DATA)
    assert (again.status_code, again.json()["deduplicated"]) == (200, True)
    assert (await signer.http.put(signed.url, content=b"short")).status_code == 403
    by_digest = await signer.client.sign_url("k", "PUT", digest=digest_of(DATA))
    same_length = bytes(reversed(DATA))
    refused = await signer.http.put(by_digest.url, content=same_length, headers=by_digest.headers)
    assert (refused.status_code, refused.json()["code"]) == (422, "IntegrityError")
    assert await signer.client.get("k") == DATA
    assert (await signer.client.usage()).objects == 1


# --- who may sign what ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scopes", "method", "allowed"),
    [
        (("read", "write"), "GET", False),
        (("sign",), "GET", False),
        (("sign", "read"), "GET", True),
        (("sign", "read"), "PUT", False),
        (("sign", "write"), "PUT", True),
        (("sign", "write"), "GET", False),
    ],
)
async def test_a_token_signs_only_what_its_scopes_allow(
    store: BlobStore, clock: FakeClock, scopes: tuple[str, ...], method: str, allowed: bool
) -> None:
    """``sign`` plus ``read`` for GET, ``write`` for PUT; anything less is 403."""
    async with signer_on(store, clock, scopes) as handle:
        if allowed:
            assert (await handle.client.sign_url("k", method)).method == method
        else:
            with pytest.raises(Forbidden):
                await handle.client.sign_url("k", method)


async def test_a_token_cannot_sign_for_another_tenant(signer: Signer) -> None:
    token = (await tokens.create(signer.store.core, "other", scopes=tokens.SCOPES)).token
    response = await signer.http.post(
        f"{signer.url}/v1/tenants/acme/signed-urls",
        json={"method": "GET", "key": "k"},
        headers={"authorization": f"Bearer {token}"},
    )
    assert response.status_code == 403


async def test_expiry_defaults_to_15_minutes_and_is_at_most_7_days(signer: Signer, clock: FakeClock) -> None:
    signed = await signer.client.sign_url("k")
    assert abs(signed.expires_at - (clock.now + signing.DEFAULT_EXPIRY)) <= timedelta(seconds=1)
    longest = await signer.client.sign_url("k", expires_in=7 * 86400)
    assert abs(longest.expires_at - (clock.now + signing.MAX_EXPIRY)) <= timedelta(seconds=1)
    for bad in (0, 7 * 86400 + 1):
        with pytest.raises(InvalidInput):
            await signer.client.sign_url("k", expires_in=bad)
    with pytest.raises(InvalidInput):
        await signer.client.sign_url("k", "GET", content_length=3)
    with pytest.raises(InvalidInput):
        await signer.client.sign_url("k", "DELETE")


# --- several servers, rotation --------------------------------------------------------------------


async def test_a_url_signed_by_one_server_works_on_another(signer: Signer, clock: FakeClock) -> None:
    """Two servers of one store share signing keys through the database."""
    signed = await signer.client.sign_url("k", "PUT", content_length=len(DATA))
    with serving(signer.store.settings, clock=clock) as other:
        response = await signer.http.put(changed_host(signed.url, other), content=DATA)
    assert response.status_code == 201, response.text
    assert await signer.client.get("k") == DATA


def changed_host(url: str, base: str) -> str:
    return urlunsplit(urlsplit(url)._replace(netloc=urlsplit(base).netloc))


async def test_rotation_keeps_unexpired_urls_working(signer: Signer, clock: FakeClock) -> None:
    """After a rotation new URLs use the new key, and URLs of the old one work until they expire."""
    await signer.client.put("k", DATA)
    old = await signer.client.sign_url("k", expires_in=3600)
    new_key = await signing.rotate(signer.store.core)
    new = await signer.client.sign_url("k", expires_in=3600)
    key_id: Callable[[str], str] = lambda url: dict(parse_qsl(urlsplit(url).query))["key_id"]  # noqa: E731
    assert key_id(new.url) == new_key.id != key_id(old.url)
    assert (await signer.http.get(old.url)).status_code == 200
    assert (await signer.http.get(new.url)).status_code == 200
    clock.advance(3600)
    assert (await signer.http.get(old.url)).status_code == 403


async def test_rotation_forgets_keys_superseded_longer_ago_than_a_url_lives(store: BlobStore, clock: FakeClock) -> None:
    first = await signing.rotate(store.core)
    second = await signing.rotate(store.core)
    clock.advance(signing.MAX_EXPIRY.total_seconds() - 1)
    await signing.rotate(store.core)
    assert first.id in {key.id for key in await signing.list_keys(store.core)}
    clock.advance(2)
    await signing.rotate(store.core)
    kept = {key.id for key in await signing.list_keys(store.core)}
    assert first.id not in kept
    assert second.id in kept


def test_signing_key_rotate_makes_a_new_key_current(tmp_path: Path) -> None:
    """``signing-key rotate`` prints the new key's id; a second rotation makes another one current."""
    first = json.loads(invoke(["signing-key", "rotate", "--json"], home=tmp_path).ok().stdout)
    second = invoke(["signing-key", "rotate"], home=tmp_path).ok().stdout
    assert second.startswith("signing key ")
    assert second.endswith(" is current\n")
    assert first["id"] not in second
    assert set(first) == {"id", "created_at", "superseded_at", "current"}


async def test_a_token_without_sign_gets_403_whatever_it_asks(store: BlobStore, clock: FakeClock) -> None:
    """The scope is judged before the request body: a malformed body from a token without ``sign`` is 403."""
    async with signer_on(store, clock, ("read", "write")) as handle:
        response = await handle.http.post(
            f"{handle.url}/v1/tenants/acme/signed-urls",
            content=b"not json",
            headers={"authorization": f"Bearer {handle.token}"},
        )
    assert response.status_code == 403


# --- killing a leaked URL -------------------------------------------------------------------------


async def test_revoking_the_signing_token_kills_its_urls_on_every_server(signer: Signer, clock: FakeClock) -> None:
    """A 7-day GET and PUT URL die with the token that signed them, on every server at once, whatever the
    rotations; another token's URLs keep working."""
    await signer.client.put("k", DATA)
    get = await signer.client.sign_url("k", expires_in=7 * 86400)
    put = await signer.client.sign_url("k", "PUT", expires_in=7 * 86400)
    other_token = await tokens.create(signer.store.core, "acme", scopes=tokens.SCOPES)
    async with BlobClient(signer.url, other_token.token) as other_client:
        survivor = await other_client.sign_url("k", expires_in=7 * 86400)
    await signing.rotate(signer.store.core)
    await signing.rotate(signer.store.core)
    with serving(signer.store.settings, clock=clock) as second:
        assert (await signer.http.get(changed_host(get.url, second))).status_code == 200
        await tokens.revoke(signer.store.core, signer.token.split("~")[2])
        for url in (get.url, changed_host(get.url, second)):
            response = await signer.http.get(url)
            assert (response.status_code, response.json()["code"]) == (403, "Forbidden")
        for url in (put.url, changed_host(put.url, second)):
            assert (await signer.http.put(url, content=b"overwritten")).status_code == 403
        assert (await signer.http.get(changed_host(survivor.url, second))).status_code == 200
    assert await signer.store.tenant("acme").get("k") == DATA


async def test_a_url_stops_working_when_its_token_expires(store: BlobStore, clock: FakeClock) -> None:
    """A URL never outlives the token that signed it: its expiry is the token's when that comes first."""
    token = await tokens.create(store.core, "acme", scopes=tokens.SCOPES, expires_in=timedelta(seconds=60))
    await store.tenant("acme").put("k", DATA)
    with serving(store.settings, clock=clock) as url:
        async with BlobClient(url, token.token) as client, httpx.AsyncClient(timeout=30) as http:
            signed = await client.sign_url("k", expires_in=3600)
            assert abs(signed.expires_at - (clock.now + timedelta(seconds=60))) <= timedelta(seconds=1)
            assert (await http.get(signed.url)).status_code == 200
            clock.advance(60)
            assert (await http.get(signed.url)).status_code == 403


async def test_retiring_a_signing_key_kills_every_url_it_signed(signer: Signer, clock: FakeClock) -> None:
    """URLs a backend signed with the library (no token) die when the operator retires their key; a URL of
    another key keeps working; retiring an unknown key is NotFound."""
    await signer.client.put("k", DATA)
    library_signed = await signing.sign(signer.store.core, signer.url, "acme", "GET", "k", expires_in=7 * 86400)
    token_signed = await signer.client.sign_url("k", expires_in=7 * 86400)
    assert (await signer.http.get(library_signed.url)).status_code == 200
    old_key = dict(parse_qsl(urlsplit(library_signed.url).query))["key_id"]
    await signing.rotate(signer.store.core)
    fresh = await signing.sign(signer.store.core, signer.url, "acme", "GET", "k")
    retired = await signing.retire(signer.store.core, old_key)
    assert retired.id == old_key
    for url in (library_signed.url, token_signed.url):
        assert (await signer.http.get(url)).status_code == 403
    assert (await signer.http.get(fresh.url)).status_code == 200
    with pytest.raises(NotFound):
        await signing.retire(signer.store.core, old_key)


def test_signing_key_ls_and_retire(tmp_path: Path) -> None:
    """``signing-key ls`` lists the keys that verify (never a secret); ``retire ID`` removes one; an unknown id
    is one error line."""
    first = json.loads(invoke(["signing-key", "rotate", "--json"], home=tmp_path).ok().stdout)["id"]
    second = json.loads(invoke(["signing-key", "rotate", "--json"], home=tmp_path).ok().stdout)["id"]
    listed = json.loads(invoke(["signing-key", "ls", "--json"], home=tmp_path).ok().stdout)
    assert [(key["id"], key["current"]) for key in listed] == [(second, True), (first, False)]
    assert set(listed[0]) == {"id", "created_at", "superseded_at", "current"}
    table = invoke(["signing-key", "ls"], home=tmp_path).ok().stdout
    assert first in table
    assert second in table
    assert invoke(["signing-key", "retire", first], home=tmp_path).ok().stdout == (
        f"signing key {first} retired: every URL it signed stops working\n"
    )
    listed = json.loads(invoke(["signing-key", "ls", "--json"], home=tmp_path).ok().stdout)
    assert [key["id"] for key in listed] == [second]
    invoke(["signing-key", "retire", first], home=tmp_path).failed(first)
    invoke(["signing-key", "retire", "nope"], home=tmp_path).failed("16 hex digits")


# --- malformed parameters -------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["expires", "content_length"])
@pytest.mark.parametrize("value", ["²", "1" * 4301, "-1", "+1", " 1", "1_000", "\uff11"])
async def test_a_malformed_number_in_a_signed_url_is_403(signer: Signer, field: str, value: str) -> None:
    """Numbers are ASCII digits of sane length: anything else (a superscript, 4,301 digits, a sign, an
    underscore, a full-width digit) is 403, never a 500."""
    signed = await signer.client.sign_url("k", "PUT", content_length=len(DATA))
    response = await signer.http.put(changed_query(signed.url, **{field: value}), content=DATA)
    assert (response.status_code, response.json()["code"]) == (403, "Forbidden")


async def test_verifying_a_signed_url_is_one_read_statement(open_store: StoreFactory, clock: FakeClock) -> None:
    """Verification takes no write lock (no BEGIN IMMEDIATE on SQLite) and checks the key and the signing
    token in one statement."""
    store = await open_store("sqlite-local")
    await store.tenant("acme").put("k", DATA)
    async with signer_on(store, clock) as handle:
        signed = await handle.client.sign_url("k")
        query = dict(parse_qsl(urlsplit(signed.url).query))
        with sql_sent(store) as sent:
            await signing.verify(store.core, "GET", "acme", "k", query, {})
    assert len(sent) == 1, sent
    assert sent[0].lstrip().upper().startswith("SELECT")
