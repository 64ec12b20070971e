"""Content types are RFC 9110 media types at every entry (library, HTTP PUT, signed PUT bounds, CLI, client);
a malformed one stored before that rule is served as application/octet-stream, as an attachment, not as a 500."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sqlalchemy import update

from blobstore import BlobStore, wire
from blobstore.auth import signing, tokens
from blobstore.client import BlobClient
from blobstore.db.models import Ref, Tenant
from blobstore.errors import InvalidInput
from blobstore.model.keys import validate_content_type
from blobstore.store import PutItem
from tests.support.cli_helpers import invoke
from tests.support.live_server import serving
from tests.support.stores import FakeClock

VALID = [
    "text/plain",
    "Text/HTML; Charset=UTF-8",
    "application/vnd.api+json",
    "multipart/form-data; boundary=----x123",
    'text/plain; name="a \\"quoted\\" name; with = signs"',
    "text/plain;charset=utf-8;format=flowed",
    "text/plain;\tcharset=utf-8",
    "text/plain;",  # RFC 9110 allows an empty parameter
    "application/x-" + "a" * 241,  # 255 characters
]
INVALID = [
    "",
    "text",
    "text/",
    "/plain",
    "text/plain/extra",
    "text /plain",
    "text/plain charset=utf-8",
    "text/plain; charset",
    "text/plain; charset=",
    'text/plain; charset="utf-8',
    "text/plain; =utf-8",
    "text/plain, text/html",
    "text/plain\r\nX-Injected: 1",
    "text/plain ",
    " text/plain",
    "text/plain; charset=ütf-8",  # Latin-1, but not ASCII: obs-text, which RFC 9110 tells senders not to make
    "текст/plain",
    "image/svg+xml; note=☃",
    "application/x-" + "a" * 242,  # 256 characters
]
#: Non-Latin-1 (the 500 of issue 18) and malformed, as an uploader could have stored them before the rule.
STORED_BEFORE = ["text/plain; charset=☃", "текст/html", "not a media type"]


@pytest.mark.parametrize("value", VALID)
def test_a_media_type_of_rfc_9110_is_accepted_unchanged(value: str) -> None:
    assert validate_content_type(value) == value


@pytest.mark.parametrize("value", INVALID)
def test_anything_else_is_refused(value: str) -> None:
    with pytest.raises(InvalidInput, match="RFC 9110"):
        validate_content_type(value)


async def test_put_and_put_many_refuse_a_malformed_type_and_store_nothing(store: BlobStore) -> None:
    acme = store.tenant("acme")
    with pytest.raises(InvalidInput):
        await acme.put("single", b"data", content_type="text/plain; charset=☃")
    [outcome] = await acme.put_many([PutItem("batched", b"data", content_type="text/plain; charset=☃")])
    assert isinstance(outcome, InvalidInput)
    assert not await acme.exists("single")
    assert not await acme.exists("batched")


async def test_an_http_put_with_a_raw_utf8_content_type_is_400(store: BlobStore, clock: FakeClock) -> None:
    """The header's UTF-8 bytes arrive as printable Latin-1 text ("Ã¼"), which is not ASCII: 400 InvalidInput,
    nothing stored."""
    token = (await tokens.create(store.core, "acme", scopes=["write"])).token
    with serving(store.settings, clock=clock) as url:
        async with httpx.AsyncClient() as http:
            response = await http.put(
                url + wire.object_path("acme", "k"),
                content=b"data",
                headers=[
                    (b"authorization", f"Bearer {token}".encode()),
                    (b"content-type", "text/plain; charset=ütf-8".encode()),
                ],
            )
    assert (response.status_code, response.json()["code"]) == (400, "InvalidInput")
    assert not await store.tenant("acme").exists("k")


async def test_a_signed_put_url_cannot_bind_a_malformed_type(store: BlobStore) -> None:
    with pytest.raises(InvalidInput, match="RFC 9110"):
        await signing.sign(store.core, "http://x", "acme", "PUT", "k", content_type="text/plain charset=utf-8")


async def test_the_client_refuses_a_malformed_type_before_sending(store: BlobStore, clock: FakeClock) -> None:
    """A type httpx could not even encode is one clear InvalidInput, as the library gives."""
    token = (await tokens.create(store.core, "acme", scopes=["write"])).token
    with serving(store.settings, clock=clock) as url:
        async with BlobClient(url, token) as acme:
            with pytest.raises(InvalidInput, match="RFC 9110"):
                await acme.put("k", b"data", content_type="text/plain; charset=☃")
    assert not await store.tenant("acme").exists("k")


def test_the_cli_refuses_a_malformed_type(tmp_path: Path) -> None:
    source = tmp_path / "file.txt"
    source.write_bytes(b"data")
    home = tmp_path / "home"
    invoke(["put", "acme", "k", str(source), "--content-type", "text/plain; charset=☃"], home=home).failed("RFC 9110")
    invoke(["stat", "acme", "k"], home=home).failed("no such key")


async def store_with_type(store: BlobStore, key: str, content_type: str) -> None:
    """Put ``key`` and give it ``content_type`` behind the store's back, as a row written before the rule."""
    await store.tenant("acme").put(key, b"<b>bytes</b>", content_type="text/plain")
    async with store.database.engine.begin() as conn:
        tenant_id = (await conn.execute(Tenant.__table__.select().where(Tenant.name == "acme"))).one().id
        await conn.execute(
            update(Ref).where(Ref.tenant_id == tenant_id, Ref.key == key).values(content_type=content_type)
        )


@pytest.mark.parametrize("stored", STORED_BEFORE)
async def test_a_type_stored_before_the_rule_is_served_as_an_octet_stream_attachment(
    store: BlobStore, clock: FakeClock, stored: str
) -> None:
    """GET, HEAD, a range and a signed GET all answer, with none of the stored type in any header."""
    await store_with_type(store, "old", stored)
    assert (await store.tenant("acme").stat("old")).content_type == stored
    token = (await tokens.create(store.core, "acme", scopes=["read"])).token
    with serving(store.settings, clock=clock) as url:
        signed = await signing.sign(store.core, url, "acme", "GET", "old")
        auth = {"authorization": f"Bearer {token}"}
        target = url + wire.object_path("acme", "old")
        async with httpx.AsyncClient() as http:
            answers = [
                await http.get(target, headers=auth),
                await http.head(target, headers=auth),
                await http.get(target, headers={**auth, "range": "bytes=0-2"}),
                await http.get(signed.url),
            ]
        async with BlobClient(url, token) as acme:
            assert (await acme.get("old")) == b"<b>bytes</b>"
    for response in answers:
        assert response.status_code in (200, 206), response.text
        assert response.headers["content-type"] == "application/octet-stream"
        assert response.headers["content-disposition"] == "attachment"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert wire.CONTENT_TYPE not in response.headers
