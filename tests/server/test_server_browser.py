"""A signed PUT from a real headless Chromium page on another origin: with that origin allowed (CORS) the
upload lands and dedups; without it the browser refuses to send it."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import queue
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from blobstore import BlobStore
from blobstore.auth import tokens
from blobstore.client import BlobClient
from blobstore.server import create_app
from tests.support.live_server import serve_process, serving_app
from tests.support.stores import FakeClock

DATA = b"uploaded by a browser\n" * 100

PAGE = """<!doctype html><meta charset="utf-8"><script>
const report = (outcome) => fetch("/report", {method: "POST", body: JSON.stringify(outcome)});
fetch(SIGNED_URL, {method: "PUT", headers: HEADERS, body: new TextEncoder().encode(BODY)})
  .then((response) => response.json().then((body) => report({status: response.status, body: body})))
  .catch((error) => report({error: String(error)}));
</script>"""


@dataclass
class Origin:
    """A loopback web origin serving one page at /, and the reports (JSON) its page posts to /report."""

    url: str
    page: str = ""
    reports: queue.Queue[dict[str, Any]] = field(default_factory=queue.Queue)


@contextlib.contextmanager
def page_origin() -> Iterator[Origin]:
    """Serve an :class:`Origin` until the block ends (its page may be set after it starts)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = origin.page.encode()
            self.send_response(200)
            self.send_header("content-type", "text/html; charset=utf-8")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            origin.reports.put(json.loads(self.rfile.read(int(self.headers["content-length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    origin = Origin(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield origin
    finally:
        server.shutdown()
        server.server_close()


def browse(chromium: str, origin: Origin, profile: Path) -> dict[str, Any]:
    """Open the origin's page in headless Chromium and return the first report the page posts."""
    browser = subprocess.Popen(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={profile}",
            origin.url,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        return origin.reports.get(timeout=120)
    finally:
        browser.kill()
        browser.wait(timeout=60)


async def upload_from_a_page(
    store: BlobStore, clock: FakeClock, chromium: str, profile: Path, *, allow_origin: bool
) -> dict[str, Any]:
    """Sign a PUT of ``from-browser.txt`` on a server that allows the page's origin (or no origin), have the
    page upload :data:`DATA` through it, and return what the page saw."""
    with page_origin() as origin:
        app = create_app(settings=store.settings, clock=clock, cors_origins=[origin.url] if allow_origin else [])
        with serving_app(app) as api:
            token = (await tokens.create(store.core, "acme", scopes=["sign", "write"])).token
            async with BlobClient(api, token) as acme:
                signed = await acme.sign_url(
                    "from-browser.txt", "PUT", content_length=len(DATA), content_type="text/plain"
                )
            origin.page = (
                PAGE.replace("SIGNED_URL", json.dumps(signed.url))
                .replace("HEADERS", json.dumps(signed.headers))
                .replace("BODY", json.dumps(DATA.decode()))
            )
            return await asyncio.to_thread(browse, chromium, origin, profile)


async def test_a_browser_uploads_through_a_signed_put_url(
    store: BlobStore, clock: FakeClock, chromium: str, tmp_path: Path
) -> None:
    """The page's fetch(url, {method: "PUT", body}) gets 201 and reads the JSON answer; the bytes dedup
    against the copy the tenant already holds."""
    await store.tenant("acme").put("already-here.txt", DATA)
    report = await upload_from_a_page(store, clock, chromium, tmp_path / "profile", allow_origin=True)
    assert report.get("status") == 201, report
    assert report["body"]["deduplicated"] is True
    assert await store.tenant("acme").get("from-browser.txt") == DATA


async def test_without_the_origin_allowed_the_browser_does_not_upload(
    store: BlobStore, clock: FakeClock, chromium: str, tmp_path: Path
) -> None:
    """The CORS setting is what lets the page upload: without it, fetch fails and nothing is stored."""
    report = await upload_from_a_page(store, clock, chromium, tmp_path / "profile", allow_origin=False)
    assert "error" in report, report
    assert not await store.tenant("acme").exists("from-browser.txt")


def test_serve_allows_the_origins_given_with_cors_origin(tmp_path: Path) -> None:
    """`blobstore serve --cors-origin` answers a browser's preflight for that origin, and only for it."""
    preflight = {"access-control-request-method": "PUT", "access-control-request-headers": "content-type"}
    with serve_process(tmp_path, "--cors-origin", "http://app.test:8000") as served:
        target = f"{served.url}/v1/tenants/acme/objects/k?signature=x"
        allowed = httpx.options(target, headers={"origin": "http://app.test:8000", **preflight})
        refused = httpx.options(target, headers={"origin": "http://elsewhere.test", **preflight})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "http://app.test:8000"
    assert "PUT" in allowed.headers["access-control-allow-methods"]
    assert "access-control-allow-origin" not in refused.headers
