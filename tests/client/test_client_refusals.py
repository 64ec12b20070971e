"""BlobClient gets the server's real answer to a request it refuses, not a transport error.

A PUT the server refuses from its headers (413 QuotaExceeded or ObjectTooLarge) is answered before its body is
read, and the connection is closed: the server must let the client finish sending (a lingering close,
blobstore.server.connections) so that httpx's async client, which reads the answer only once the body is out,
gets the 413 instead of a reset. Over a real uvicorn server in this process and the real ``blobstore serve``;
each upload is repeated, as losing the answer is a race. And the connection bound's plain 503 (no problem
document) is StorageUnavailable, which is retryable.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from blobstore import ObjectTooLarge, QuotaExceeded, StorageUnavailable
from blobstore.auth import tokens
from blobstore.client import BlobClient
from blobstore.server import connections
from tests.support.cli_helpers import invoke
from tests.support.live_server import serve_process, serving
from tests.support.stores import FakeClock, StoreFactory

MiB = 1024 * 1024
#: The store's maximum object size in these tests.
MAX_OBJECT_SIZE = 40 * MiB
#: Bodies far larger than the kernel's socket buffers (most of each is still to send when the 413 arrives):
#: one within the maximum object size (refused by a 1 KB quota), one past it.
LARGE = 32 * MiB
TOO_LARGE = 48 * MiB
#: How often each refused upload is tried: a lost answer is a race, not a certainty.
TRIES = 5
PIECE = 256 * 1024
#: The environment of the ``blobstore serve`` processes.
ENV: dict[str, str | None] = {"BLOBSTORE_MAX_OBJECT_SIZE": str(MAX_OBJECT_SIZE)}


async def _pieces(total: int) -> AsyncIterator[bytes]:
    """``total`` zero bytes as an async iterable (sent chunked, without a Content-Length)."""
    piece = bytes(PIECE)
    for _ in range(total // PIECE):
        yield piece


async def _assert_refused(client: BlobClient, error: type[QuotaExceeded], size: int) -> None:
    """Every upload of ``size`` bytes, in memory and streamed, raises exactly ``error``, TRIES times over."""
    body = bytes(size)
    for attempt in range(TRIES):
        for content in (body, _pieces(size)):
            with pytest.raises(QuotaExceeded) as raised:
                await client.put("k", content)
            assert type(raised.value) is error, (attempt, type(content), repr(raised.value))


@pytest.mark.slow
async def test_refused_uploads_raise_their_error_over_a_server_in_process(
    open_store: StoreFactory, clock: FakeClock
) -> None:
    store = await open_store("sqlite-local", max_object_size=MAX_OBJECT_SIZE)
    await store.set_quota("acme", max_bytes=1000)
    acme = await tokens.create(store.core, "acme", scopes=tokens.SCOPES)
    roomy = await tokens.create(store.core, "roomy", scopes=tokens.SCOPES)
    with serving(store.settings, clock=clock) as url:
        async with BlobClient(url, acme.token) as client:
            await _assert_refused(client, QuotaExceeded, LARGE)
            assert (await client.put("small", bytes(1000))).size == 1000  # the connection pool still works
        async with BlobClient(url, roomy.token) as client:
            await _assert_refused(client, ObjectTooLarge, TOO_LARGE)
    assert (await store.quota("acme")).used_objects == 1
    assert not await store.tenant("roomy").exists("k")


@pytest.fixture
def home(tmp_path: Path) -> tuple[Path, str, str]:
    """A ``blobstore serve`` home: tenant acme with a 1 KB quota and tenant roomy, a token of each (made here,
    outside the tests' event loop, as the CLI runs its own)."""
    acme = invoke(["token", "create", "acme"], home=tmp_path, env=ENV).ok().stdout.strip()
    roomy = invoke(["token", "create", "roomy"], home=tmp_path, env=ENV).ok().stdout.strip()
    invoke(["tenant", "quota", "set", "acme", "--max-bytes", "1000"], home=tmp_path, env=ENV).ok()
    return tmp_path, acme, roomy


@pytest.mark.slow
async def test_refused_uploads_raise_their_error_over_blobstore_serve(home: tuple[Path, str, str]) -> None:
    path, acme, roomy = home
    with serve_process(path, env=ENV) as server:
        async with BlobClient(server.url, acme) as client:
            await _assert_refused(client, QuotaExceeded, LARGE)
        async with BlobClient(server.url, roomy) as client:
            await _assert_refused(client, ObjectTooLarge, TOO_LARGE)


@pytest.mark.slow
async def test_the_connection_bounds_503_is_storage_unavailable(home: tuple[Path, str, str]) -> None:
    """uvicorn's plain-text 503 beyond --max-connections reaches BlobClient as StorageUnavailable (retryable)
    from the answer, not as a transport error."""
    path, token, _roomy = home
    with serve_process(path, "--max-connections", "2", "--header-timeout", "60") as server:
        port = int(server.url.rsplit(":", 1)[1])
        idle = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(6)]
        try:
            async with BlobClient(server.url, token) as client:
                with pytest.raises(StorageUnavailable) as raised:
                    await client.usage()
        finally:
            for conn in idle:
                conn.close()
    assert raised.value.retryable
    assert raised.value.__cause__ is None, "a transport error, not the server's 503"
    assert "503" in str(raised.value)


def _refuse_then_keep_sending(url: str, token: str) -> tuple[bytes, int, float]:
    """PUT a 1 GiB Content-Length and read the answer (413) up to the server's FIN, then keep sending body bytes
    until the server closes for good; return the answer, the bytes sent after it and the seconds they took."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        head = f"PUT /v1/tenants/acme/objects/k HTTP/1.1\r\nhost: {host}\r\nauthorization: Bearer {token}\r\n"
        sock.sendall(f"{head}content-length: {1024 * MiB}\r\n\r\n".encode())
        answer = b""
        while chunk := sock.recv(65536):  # the server half-closes after its answer: recv ends, send still works
            answer += chunk
        sent, started, piece = 0, time.monotonic(), bytes(64 * 1024)
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            while time.monotonic() - started < 30:
                sent += sock.send(piece)
                time.sleep(0.001)
        return answer, sent, time.monotonic() - started


@pytest.mark.slow
@pytest.mark.parametrize("bound", ["seconds", "bytes"])
async def test_a_lingering_connection_is_bounded_in_time_and_bytes(
    open_store: StoreFactory, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, bound: str
) -> None:
    """After a 413 from the headers, the server half-closes and discards what the client still sends, but for
    LINGER_SECONDS and LINGER_BYTES at most: then it closes (a client still sending gets a reset)."""
    if bound == "seconds":
        monkeypatch.setattr(connections, "LINGER_SECONDS", 1.0)
    else:
        monkeypatch.setattr(connections, "LINGER_SECONDS", 60.0)
        monkeypatch.setattr(connections, "LINGER_BYTES", 4 * MiB)
    store = await open_store("sqlite-local")
    await store.set_quota("acme", max_bytes=1000)
    token = await tokens.create(store.core, "acme", scopes=tokens.SCOPES)
    with serving(store.settings, clock=clock) as url:
        answer, sent, seconds = await asyncio.to_thread(_refuse_then_keep_sending, url, token.token)
    assert answer.startswith(b"HTTP/1.1 413 "), answer
    assert b"QuotaExceeded" in answer
    assert seconds < 20, (sent, seconds)
    if bound == "bytes":
        assert sent < 4 * MiB + 32 * MiB, sent  # the bound, plus what the kernel's socket buffers took
    assert not await store.tenant("acme").exists("k")
