"""A real uvicorn server on a loopback port, in a thread, serving a store's deployment over HTTP.

``serving(settings)`` opens its own store on the same database and storage as
the caller's (as a separate server process would) and yields the base URL;
``serving_app(app)`` serves any ASGI app the same way. ``serve_process`` runs
the real ``blobstore serve`` command instead.
``connector`` hands a test either the in-process ``Tenant`` or a ``BlobClient``
over such a server, so one test body proves both transports.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from blobstore import BlobStore, Settings, TenantAPI
from blobstore.auth import tokens
from blobstore.client import BlobClient
from blobstore.core.context import Clock, utc_now
from blobstore.server import connections, create_app

#: The transports the store-semantics suite runs over.
TRANSPORTS = ["tenant", "http"]

#: What the semantics suite runs against: the one tenant contract, which both transports implement.
Handle = TenantAPI
Connect = Callable[[BlobStore, str], Awaitable[Handle]]


@contextlib.contextmanager
def serving(settings: Settings, *, clock: Clock = utc_now, store: BlobStore | None = None) -> Iterator[str]:
    """Serve the deployment of ``settings`` on 127.0.0.1 and a free port until the block ends; yield the base URL."""
    with serving_app(create_app(store, settings=settings, clock=clock)) as url:
        yield url


@contextlib.contextmanager
def serving_app(app: Any) -> Iterator[str]:
    """Serve an ASGI app (lifespan on) on 127.0.0.1 and a free port until the block ends; yield the base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # The protocol of `blobstore serve` (its header timeout and lingering close), not uvicorn's default.
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", http=connections.PROTOCOL))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=60)
        sock.close()


def read_response(conn: socket.socket) -> bytes:
    """One HTTP response (head and a Content-Length body) from ``conn``; b'' if the server closed it."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    while len(body) < length:
        body += conn.recv(65536)
    return data


@dataclass(frozen=True)
class Served:
    """A running ``blobstore serve``: its URL, the file its stdout goes to, and its process."""

    url: str
    out: Path
    process: subprocess.Popen[bytes]


@contextlib.contextmanager
def serve_process(
    home: Path,
    *args: str,
    env: dict[str, str | None] | None = None,
    preexec: Callable[[], None] | None = None,
) -> Iterator[Served]:
    """Run ``blobstore serve ARGS`` on a free loopback port of the embedded store in ``home`` until the block
    ends (then SIGTERM, unless it has exited); yield it once /readyz answers 200. ``preexec`` runs in the
    child before the command (to lower a resource limit, say)."""
    from tests.support.cli_helpers import process_env

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    home.mkdir(parents=True, exist_ok=True)
    out, err = home / "serve.out", home / "serve.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        server = subprocess.Popen(
            [sys.executable, "-m", "blobstore", "serve", "--port", str(port), *args],
            env=process_env(home, {"PYTHONUNBUFFERED": "1", **(env or {})}),
            stdout=stdout,
            stderr=stderr,
            preexec_fn=preexec,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{url}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                assert server.poll() is None, err.read_text()
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
        yield Served(url, out, server)
    finally:
        if server.poll() is None:
            server.terminate()
        server.wait(timeout=60)


def free_port() -> int:
    """A loopback port free at the moment of asking."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def connector(transport: str, clock: Clock) -> AsyncIterator[Connect]:
    """``connect(store, tenant)``: ``store.tenant(tenant)``, or a BlobClient with an all-scopes token of that
    tenant over a server of the store's deployment (one server per store, for the whole test)."""
    with contextlib.ExitStack() as servers:
        urls: dict[int, str] = {}
        clients: list[BlobClient] = []

        async def connect(store: BlobStore, tenant: str) -> Handle:
            if transport == "tenant":
                return store.tenant(tenant)
            if id(store) not in urls:
                urls[id(store)] = servers.enter_context(serving(store.settings, clock=clock))
            token = await tokens.create(store.core, tenant, scopes=tokens.SCOPES)
            client = BlobClient(urls[id(store)], token.token)
            clients.append(client)
            return client

        try:
            yield connect
        finally:
            for client in clients:
                await client.aclose()
