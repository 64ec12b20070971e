"""Graceful shutdown of `blobstore serve`: on SIGTERM it stops accepting, lets an upload in flight finish
within --shutdown-timeout, then exits; an upload still running at the timeout is cut with a 503 and stores
nothing."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from starlette.types import Message, Receive, Scope, Send

from blobstore.server.shutdown import ShutdownMiddleware
from tests.support.cli_helpers import invoke
from tests.support.live_server import Served, serve_process

PIECE = b"x" * 65536


def slow_upload(served: Served, token: str, started: threading.Event, release: threading.Event) -> httpx.Response:
    """PUT ``k`` whose body sends one piece, signals ``started``, and sends the rest once ``release`` is set."""

    def body() -> Iterator[bytes]:
        yield PIECE
        started.set()
        release.wait(timeout=120)
        yield PIECE

    return httpx.put(
        f"{served.url}/v1/tenants/acme/objects/k",
        content=body(),
        headers={"authorization": f"Bearer {token}", "content-length": str(2 * len(PIECE))},
        timeout=120,
    )


def upload_during_sigterm(home: Path, timeout: str, *, finish: bool) -> Future[httpx.Response]:
    """Start a slow upload, SIGTERM the server mid-body, let the upload finish (or not), wait for the exit."""
    token = invoke(["token", "create", "acme"], home=home).ok().stdout.strip()
    started, release = threading.Event(), threading.Event()
    with serve_process(home, "--shutdown-timeout", timeout) as served, ThreadPoolExecutor(1) as pool:
        upload = pool.submit(slow_upload, served, token, started, release)
        assert started.wait(timeout=60)
        served.process.send_signal(signal.SIGTERM)
        with pytest.raises(httpx.TransportError):  # no new connections once shutting down
            _await_refusal(served.url)
        if finish:
            release.set()
        assert served.process.wait(timeout=120) in (0, -signal.SIGTERM)  # uvicorn re-raises SIGTERM once done
        release.set()
        return upload


def _await_refusal(url: str) -> None:
    """Raise once the server refuses connections (it answers none while shutting down)."""
    for _ in range(600):
        httpx.get(f"{url}/healthz", timeout=5)
        threading.Event().wait(0.05)


def test_an_upload_in_flight_finishes_before_the_server_exits(tmp_path: Path) -> None:
    upload = upload_during_sigterm(tmp_path, "60", finish=True)
    assert upload.result().status_code == 201
    assert invoke(["get", "acme", "k"], home=tmp_path).ok().stdout_bytes == 2 * PIECE


def test_an_upload_cut_by_the_shutdown_timeout_gets_503_and_stores_nothing(tmp_path: Path) -> None:
    """The cut upload's client hears why (503 StorageUnavailable with Retry-After: retry it elsewhere or later),
    not uvicorn's bare 500; nothing of it is stored."""
    response = upload_during_sigterm(tmp_path, "1", finish=False).result()
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "1"
    assert response.headers["connection"] == "close"
    assert response.json()["code"] == "StorageUnavailable"
    assert "shut down" in response.json()["detail"]
    assert invoke(["ls", "--json", "acme"], home=tmp_path).ok().stdout.strip() == "[]"


async def _cancelled_request(answer_first: bool) -> list[Message]:
    """Run ShutdownMiddleware over an app cancelled mid-request (after starting its answer, or before); the
    messages it sent. The cancellation must go on past the middleware."""
    sent: list[Message] = []

    async def app(_scope: Scope, _receive: Receive, send: Send) -> None:
        if answer_first:
            await send({"type": "http.response.start", "status": 200, "headers": []})
        raise asyncio.CancelledError

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b""}
    with pytest.raises(asyncio.CancelledError):
        await ShutdownMiddleware(app)(scope, receive, send)
    return sent


async def test_a_request_cancelled_before_its_answer_gets_a_503_problem() -> None:
    start, body = await _cancelled_request(answer_first=False)
    assert start["status"] == 503
    assert (b"retry-after", b"1") in start["headers"]
    assert json.loads(body["body"])["code"] == "StorageUnavailable"


async def test_a_request_cancelled_mid_answer_gets_no_second_answer() -> None:
    """A download under way can only be cut: nothing is sent after its own start."""
    assert [message["type"] for message in await _cancelled_request(answer_first=True)] == ["http.response.start"]
