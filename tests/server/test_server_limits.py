"""Quota and the maximum object size are enforced before the body is read, not after it is spooled.

A PUT whose ``Content-Length`` already crosses the tenant's quota or the store's maximum object size is
answered 413 from its headers alone; a body without a length (chunked) is cut off as soon as its
running total crosses either. The same holds for a signed PUT URL that binds no length, and the
maximum object size holds for every put of the library.

The server answers and closes the connection without storing the rest (it discards what the client
still sends for a moment, a lingering close); sockets and httpx's sync client are used here, BlobClient
with large refused bodies in test_client_refusals.
"""

from __future__ import annotations

import asyncio
import json
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from blobstore import BlobStore, ObjectTooLarge, QuotaExceeded
from blobstore.auth import tokens
from blobstore.client import BlobClient
from blobstore.server import connections
from blobstore.store import PutItem
from tests.support.live_server import serving
from tests.support.stores import FakeClock, StoreFactory

MiB = 1024 * 1024
#: What a hostile client claims to send (and, for chunked bodies, would send if nothing stopped it).
HUGE = 256 * MiB
#: Bytes a refused upload may still push into the kernel's socket buffers and the server's first reads, and
#: what the server discards after its answer so that the client can read it (the lingering close).
BUFFERED = 32 * MiB + connections.LINGER_BYTES
PIECE = 64 * 1024


@pytest.fixture
def spool_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Spool files of this test's in-process server go here (and only its), so their growth is seen."""
    directory = tmp_path / "spool"
    directory.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(directory))
    yield directory
    assert list(directory.iterdir()) == [], "a spool file was left behind"


@dataclass
class Upload:
    """A chunked body of up to ``total`` bytes that records how much of it the client was asked for,
    and the largest spool file it saw while it was pulled."""

    spool: Path
    total: int = HUGE
    pulled: int = 0
    largest_spool: int = 0
    _seen: set[str] = field(default_factory=set)

    def body(self) -> Iterator[bytes]:
        piece = bytes(PIECE)
        while self.pulled < self.total:
            self.largest_spool = max([self.largest_spool, *(_size(path) for path in self.spool.iterdir())])
            self.pulled += PIECE
            yield piece

    async def stream(self) -> AsyncIterator[bytes]:
        """:meth:`body` as the async iterable a library put takes."""
        for piece in self.body():
            yield piece


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


async def _put_streamed(url: str, headers: dict[str, str], upload: Upload) -> httpx.Response:
    """PUT ``upload``'s chunked body with httpx's sync client (in a thread: the server runs in this process)."""
    return await asyncio.to_thread(httpx.put, url, content=upload.body(), headers=headers, timeout=60)


@dataclass
class Server:
    store: BlobStore
    url: str
    token: str
    spool: Path

    def path(self, key: str) -> str:
        return f"/v1/tenants/acme/objects/{key}"

    def auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}


@pytest.fixture
async def server(open_store: StoreFactory, clock: FakeClock, spool_dir: Path) -> AsyncIterator[Server]:
    """A live server of a SQLite store whose largest object is 64 MiB, with a token of ``acme``."""
    store = await open_store("sqlite-local", max_object_size=64 * MiB)
    token = await tokens.create(store.core, "acme", scopes=tokens.SCOPES)
    with serving(store.settings, clock=clock) as url:
        yield Server(store, url, token.token, spool_dir)


def _headers_only(url: str, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    """Send a PUT's request line and headers, never a byte of its body; return the server's answer.

    A server that waits for the body never answers, and the read times out (the test fails)."""
    host, port = urlsplit(url).hostname or "", urlsplit(url).port or 80
    with socket.create_connection((host, port), timeout=30) as sock:
        lines = [f"PUT {path} HTTP/1.1", f"host: {host}:{port}", *(f"{k}: {v}" for k, v in headers.items())]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            assert chunk, f"the server closed the connection without an answer: {received!r}"
            received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        answer = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in header_lines)}
        while len(body) < int(answer.get("content-length", "0")):
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        return int(status_line.split()[1]), answer, body


async def _refused_from_headers(server: Server, path: str, headers: dict[str, str]) -> str:
    """The problem code of a PUT answered from its headers alone (asserting it was a 413)."""
    status, answer, body = await asyncio.to_thread(_headers_only, server.url, path, headers)
    assert status == 413, body
    assert answer["connection"] == "close"  # the unread body is not read (and thrown away) either
    code: str = json.loads(body)["code"]
    return code


# --- Content-Length -------------------------------------------------------------------------------


async def test_a_declared_length_over_the_quota_is_refused_before_the_body(server: Server) -> None:
    """A 48 MiB Content-Length under a 1 KB quota: 413 QuotaExceeded while only the headers were sent."""
    await server.store.set_quota("acme", max_bytes=1000)
    headers = server.auth() | {"content-length": str(48 * MiB)}
    assert await _refused_from_headers(server, server.path("k"), headers) == "QuotaExceeded"
    assert list(server.spool.iterdir()) == []
    assert (await server.store.quota("acme")).used_objects == 0


async def test_a_declared_length_over_the_maximum_object_size_is_refused_before_the_body(server: Server) -> None:
    """A Content-Length above BLOBSTORE_MAX_OBJECT_SIZE: 413 ObjectTooLarge from the headers alone."""
    headers = server.auth() | {"content-length": str(64 * MiB + 1)}
    assert await _refused_from_headers(server, server.path("k"), headers) == "ObjectTooLarge"
    assert list(server.spool.iterdir()) == []


async def test_a_new_key_past_the_object_limit_is_refused_before_the_body(server: Server) -> None:
    """With the tenant's object limit reached, a PUT of a new key is 413 from its headers alone."""
    await server.store.tenant("acme").put("first", b"1")
    await server.store.set_quota("acme", max_objects=1)
    headers = server.auth() | {"content-length": "10"}
    assert await _refused_from_headers(server, server.path("second"), headers) == "QuotaExceeded"


async def test_the_pre_check_accepts_what_the_atomic_check_accepts(server: Server) -> None:
    """A replacement is charged only its growth: at the limit, a key may be replaced by as many bytes as
    its old value plus the room left, and under a limit lowered below usage, by fewer bytes than it had."""
    acme = server.store.tenant("acme")
    await acme.put("k", bytes(800))
    await server.store.set_quota("acme", max_bytes=1000)
    async with httpx.AsyncClient(base_url=server.url, headers=server.auth(), timeout=30) as http:
        assert (await http.put(server.path("k"), content=bytes(1000))).status_code == 200
        assert (await http.put(server.path("k"), content=bytes(1001))).status_code == 413
        await server.store.set_quota("acme", max_bytes=500)
        assert (await http.put(server.path("k"), content=bytes(600))).status_code == 200
        assert (await http.put(server.path("k"), content=bytes(601))).status_code == 413
        assert (await http.put(server.path("new"), content=b"")).status_code == 201
    assert (await server.store.quota("acme")).used_bytes == 600


# --- bodies without a length ----------------------------------------------------------------------


async def test_a_chunked_body_is_cut_off_once_it_passes_the_quota(server: Server) -> None:
    """A chunked body under a 1 MiB quota is refused (413) once its running total passes the quota:
    the client is asked for a bounded part of its 256 MiB, and the spool never grows past the quota."""
    await server.store.set_quota("acme", max_bytes=MiB)
    upload = Upload(server.spool)
    response = await _put_streamed(server.url + server.path("k"), server.auth(), upload)
    assert (response.status_code, response.json()["code"]) == (413, "QuotaExceeded")
    assert upload.pulled < BUFFERED, upload.pulled
    assert upload.largest_spool <= 2 * MiB
    assert (await server.store.quota("acme")).used_objects == 0


async def test_a_chunked_body_is_cut_off_once_it_passes_the_maximum_object_size(server: Server) -> None:
    """A chunked body larger than BLOBSTORE_MAX_OBJECT_SIZE is refused (413 ObjectTooLarge) while it streams."""
    upload = Upload(server.spool)
    response = await _put_streamed(server.url + server.path("k"), server.auth(), upload)
    assert (response.status_code, response.json()["code"]) == (413, "ObjectTooLarge")
    assert upload.pulled < 64 * MiB + BUFFERED, upload.pulled
    assert not await server.store.tenant("acme").exists("k")


async def test_the_client_raises_object_too_large(open_store: StoreFactory, clock: FakeClock) -> None:
    """BlobClient maps the 413 back to ObjectTooLarge, which is a QuotaExceeded."""
    store = await open_store("sqlite-local", max_object_size=1000)
    token = await tokens.create(store.core, "acme", scopes=tokens.SCOPES)
    with serving(store.settings, clock=clock) as url:
        async with BlobClient(url, token.token) as client:
            with pytest.raises(ObjectTooLarge):
                await client.put("k", bytes(1001))
            assert (await client.put("k", bytes(1000))).size == 1000
    assert issubclass(ObjectTooLarge, QuotaExceeded)


# --- signed URLs ----------------------------------------------------------------------------------


async def test_a_signed_put_url_without_a_bound_length_is_limited_the_same_way(server: Server) -> None:
    """A signed PUT URL that binds no length: a declared length over the quota is refused from the headers,
    a chunked body once it passes the quota."""
    await server.store.set_quota("acme", max_bytes=MiB)
    async with BlobClient(server.url, server.token) as client:
        signed = await client.sign_url("k", "PUT")
    target = urlsplit(signed.url)
    path = f"{target.path}?{target.query}"
    assert await _refused_from_headers(server, path, {"content-length": str(48 * MiB)}) == "QuotaExceeded"
    upload = Upload(server.spool)
    response = await _put_streamed(signed.url, {}, upload)
    assert (response.status_code, response.json()["code"]) == (413, "QuotaExceeded")
    assert upload.pulled < BUFFERED, upload.pulled


# --- the library ----------------------------------------------------------------------------------


async def test_the_library_refuses_objects_over_the_maximum_size(
    open_store: StoreFactory, tmp_path: Path, spool_dir: Path
) -> None:
    """Every kind of put (bytes, file path, stream, batch) larger than the maximum raises ObjectTooLarge
    before it stores anything; a stream is not read far past the limit; one at the limit is stored."""
    store = await open_store("sqlite-local", max_object_size=MiB)
    acme = store.tenant("acme")
    with pytest.raises(ObjectTooLarge):
        await acme.put("bytes", bytes(MiB + 1))
    path = tmp_path / "big"
    path.write_bytes(bytes(MiB + 1))
    with pytest.raises(ObjectTooLarge):
        await acme.put("path", path)
    upload = Upload(spool_dir)
    with pytest.raises(ObjectTooLarge):
        await acme.put("stream", upload.stream())
    assert upload.pulled <= MiB + PIECE
    [too_large, fits] = await acme.put_many([PutItem("batch", bytes(MiB + 1)), PutItem("fits", bytes(MiB))])
    assert isinstance(too_large, ObjectTooLarge)
    assert not isinstance(fits, Exception)
    assert [info.key for info in await acme.list()] == ["fits"]
    assert upload.largest_spool <= MiB
