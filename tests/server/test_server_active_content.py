"""A tenant's HTML or SVG never runs as a page of the server's origin (or of the host app's, under a FastAPI
mount): every object carries nosniff and a sandboxing CSP, and the types a browser runs are attachments unless
the operator serves objects from an origin of their own. Proven in headless Chromium and header by header."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from blobstore import BlobStore, wire
from blobstore.auth import signing, tokens
from blobstore.fastapi import mount
from blobstore.server import create_app
from tests.support.cli_helpers import invoke
from tests.support.headless import Chromium, Visit
from tests.support.live_server import serve_process, serving_app
from tests.support.stores import FakeClock, StoreFactory

SANDBOX = {"x-content-type-options": "nosniff", "content-security-policy": "sandbox; default-src 'none'"}
#: What the tenant's script would do on the server's origin: write a key through a signed PUT, change the page.
SCRIPT = """
const request = new XMLHttpRequest();
request.open("PUT", SIGNED_PUT, false);
request.send("written by the tenant's script");
document.getElementById("marker").textContent = ["script", "ran"].join(" ");
"""
PAGES = {
    "html": (
        "Text/HTML; Charset=UTF-8",
        '<!doctype html><html><body><p id="marker">tenant page</p><script>SCRIPT</script></body></html>',
    ),
    "svg": (
        "image/svg+xml",
        '<svg xmlns="http://www.w3.org/2000/svg"><text id="marker" y="20">tenant page</text>'
        "<script><![CDATA[SCRIPT]]></script></svg>",
    ),
}
WRITTEN_BY_SCRIPT = "written-by-script"

ACTIVE = [
    "text/html",
    "Text/HTML; charset=utf-8",
    "TEXT/HTML ;charset=utf-8",
    "application/xhtml+xml",
    "image/svg+xml",
    "image/SVG+XML; charset=utf-8",
    "text/xml",
    "application/xml",
    "application/rss+xml",
    "application/mathml+xml",
    "text/xsl",
    "text/javascript",
    "application/javascript; charset=utf-8",
    "application/x-javascript",
    "text/ecmascript",
    "multipart/x-mixed-replace; boundary=frame",
]
PASSIVE = [
    None,
    "text/plain",
    'text/plain; x="text/html"',
    "text/css",
    "text/csv",
    "image/png",
    "image/jpeg",
    "application/json",
    "application/pdf",
    "application/octet-stream",
    "application/xml-dtd",
    "video/mp4",
]


# --- in a browser -----------------------------------------------------------------------------------


@contextlib.contextmanager
def server(store: BlobStore, clock: FakeClock, how: str, *, inline: bool = False) -> Iterator[str]:
    """Serve the store's deployment standalone or mounted at /storage in a host app; yield the API's base URL."""
    options = {"inline_active_content": True} if inline else {}  # the default is what the first test proves
    if how == "standalone":
        app = create_app(settings=store.settings, clock=clock, **options)
        with serving_app(app) as url:
            yield url
        return
    host = FastAPI()
    mount(host, prefix="/storage", settings=store.settings, clock=clock, **options)
    with serving_app(host) as url:
        yield url + "/storage"


async def open_tenant_page(store: BlobStore, base: str, page: str, chromium: str, profile: Path) -> Visit:
    """Store the page (its script armed with a signed PUT of :data:`WRITTEN_BY_SCRIPT` on the same server)
    and open it in Chromium through a signed GET URL."""
    content_type, markup = PAGES[page]
    put = await signing.sign(store.core, base, "acme", "PUT", WRITTEN_BY_SCRIPT)
    body = markup.replace("SCRIPT", SCRIPT.replace("SIGNED_PUT", json.dumps(put.url)))
    await store.tenant("acme").put(f"pages/{page}", body.encode(), content_type=content_type)
    get = await signing.sign(store.core, base, "acme", "GET", f"pages/{page}")

    def visit() -> Visit:
        with Chromium(chromium, profile) as browser:
            return browser.open(get.url)

    return await asyncio.to_thread(visit)


@pytest.mark.parametrize("page", sorted(PAGES))
@pytest.mark.parametrize("how", ["standalone", "fastapi-mount"])
async def test_a_tenant_page_opened_on_the_servers_origin_is_a_download(
    open_store: StoreFactory, clock: FakeClock, chromium: str, tmp_path: Path, how: str, page: str
) -> None:
    """Opened from a signed GET URL, the page is downloaded, not shown: its script neither changes the
    page nor calls the server."""
    store = await open_store("sqlite-local")
    with server(store, clock, how) as base:
        visit = await open_tenant_page(store, base, page, chromium, tmp_path / "profile")
    assert not await store.tenant("acme").exists(WRITTEN_BY_SCRIPT), "the page's script called the server"
    assert "script ran" not in visit.dom
    assert visit.download, visit


@pytest.mark.parametrize("page", sorted(PAGES))
@pytest.mark.parametrize("how", ["standalone", "fastapi-mount"])
async def test_inline_the_page_shows_but_its_script_does_not_run(
    open_store: StoreFactory, clock: FakeClock, chromium: str, tmp_path: Path, how: str, page: str
) -> None:
    """With inline_active_content the page is shown, sandboxed by its CSP: no script runs."""
    store = await open_store("sqlite-local")
    with server(store, clock, how, inline=True) as base:
        visit = await open_tenant_page(store, base, page, chromium, tmp_path / "profile")
    assert not await store.tenant("acme").exists(WRITTEN_BY_SCRIPT), "the page's script called the server"
    assert "script ran" not in visit.dom
    assert not visit.download, visit
    assert "tenant page" in visit.dom


# --- header by header -------------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ACTIVE)
def test_a_type_a_browser_runs_is_an_attachment_unless_served_inline(content_type: str) -> None:
    assert wire.content_headers(content_type) == {
        **SANDBOX,
        "content-type": content_type,
        wire.CONTENT_TYPE: content_type,
        "content-disposition": "attachment",
    }
    assert "content-disposition" not in wire.content_headers(content_type, inline_active_content=True)


@pytest.mark.parametrize("content_type", PASSIVE)
def test_a_passive_type_is_served_inline(content_type: str | None) -> None:
    headers = wire.content_headers(content_type)
    assert "content-disposition" not in headers
    assert headers["content-type"] == (content_type or wire.DEFAULT_CONTENT_TYPE)
    assert headers.items() >= SANDBOX.items()


async def test_every_answer_about_an_object_carries_the_sandbox(open_store: StoreFactory, clock: FakeClock) -> None:
    """GET, HEAD, 206, 304 and a signed GET; the HTML one as an attachment on each that has a body's headers."""
    store = await open_store("sqlite-local")
    acme = store.tenant("acme")
    await acme.put("page.html", b"<script>alert(1)</script>", content_type="Text/HTML; charset=utf-8")
    note = await acme.put("note.txt", b"<script>alert(1)</script>", content_type="text/plain")
    token = (await tokens.create(store.core, "acme", scopes=["read"])).token
    auth = {"authorization": f"Bearer {token}"}
    with serving_app(create_app(settings=store.settings, clock=clock)) as url:
        signed = await signing.sign(store.core, url, "acme", "GET", "page.html")
        async with httpx.AsyncClient(base_url=url) as http:
            answers = {
                f"{method} {key}{suffix}": await http.request(method, wire.object_path("acme", key), headers=headers)
                for key in ("page.html", "note.txt")
                for method in ("GET", "HEAD")
                for suffix, headers in (("", auth), (" bytes=0-3", {**auth, "range": "bytes=0-3"}))
            }
            answers["GET page.html signed"] = await http.get(signed.url)
            answers["GET note.txt 304"] = await http.get(
                wire.object_path("acme", "note.txt"), headers={**auth, "if-none-match": wire.etag(note.digest)}
            )
    assert answers["GET note.txt 304"].status_code == 304
    assert answers["GET page.html bytes=0-3"].status_code == 206
    for name, response in answers.items():
        assert response.headers.items() >= SANDBOX.items(), name
        html = "page.html" in name
        assert response.headers.get("content-disposition") == ("attachment" if html else None), name


def test_serve_inline_active_content_serves_html_inline(tmp_path: Path) -> None:
    """`blobstore serve --inline-active-content`: HTML without Content-Disposition, still sandboxed."""
    token = invoke(["token", "create", "acme"], home=tmp_path).ok().stdout.strip()
    auth = {"authorization": f"Bearer {token}"}
    with serve_process(tmp_path, "--inline-active-content") as served:
        target = served.url + wire.object_path("acme", "page.html")
        stored = httpx.put(target, content=b"<p>hi</p>", headers={**auth, "content-type": "text/html"})
        assert stored.status_code == 201, stored.text
        response = httpx.get(target, headers=auth)
    assert response.headers["content-type"] == "text/html"
    assert "content-disposition" not in response.headers
    assert response.headers.items() >= SANDBOX.items()
