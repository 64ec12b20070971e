"""An S3 endpoint that accepts connections and then never answers fails every request with StorageUnavailable
once the client's timeouts and retries are spent (guarantee 9); none waits for good."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator

import pytest

from blobstore.errors import StorageUnavailable
from blobstore.storage.s3 import S3Storage

#: Far more than what one attempt under a 1 s read timeout takes: past it the request is hanging.
GUARD_SECONDS = 60


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """A loopback server that accepts every connection and reads all it is sent, and never answers."""
    with socket.create_server(("127.0.0.1", 0)) as server:

        def read_all(conn: socket.socket) -> None:
            with conn:
                while conn.recv(65536):
                    pass

        def accept() -> None:
            while True:
                try:
                    conn, _ = server.accept()
                except OSError:  # the server closed: the test is over
                    return
                threading.Thread(target=read_all, args=(conn,), daemon=True).start()

        threading.Thread(target=accept, daemon=True).start()
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


@pytest.mark.parametrize("size", [1, 2 * 2**20])
async def test_a_put_to_an_endpoint_that_never_answers_fails_instead_of_hanging(
    silent_endpoint: str, size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """botocore asks for ``Expect: 100-continue`` on a PutObject, and aiohttp waits for it without a timeout;
    the storage drops the header, so the read timeout bounds the wait."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    storage = S3Storage(
        "bucket", endpoint_url=silent_endpoint, region="us-east-1", connect_timeout=1, read_timeout=1, max_attempts=1
    )
    try:
        async with asyncio.timeout(GUARD_SECONDS):
            with pytest.raises(StorageUnavailable):
                await storage.write("data/ab/x", b"x" * size)
    finally:
        await storage.close()
