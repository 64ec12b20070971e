"""A bound on the one wait of an S3 request that aiobotocore leaves open, so that an endpoint which accepts a
connection and then goes silent fails the request (StorageUnavailable, after the client's retries) instead of
hanging it for good (tests/storage/test_storage_s3_stalls.py, against a loopback server that accepts and never
answers).

botocore asks for ``Expect: 100-continue`` on every PUT or POST whose body is file-like, which includes every
PutObject (it wraps a bytes body) and UploadPart. aiohttp then waits for the interim answer before it sends the
body, with no timeout at all: its read timeout is armed only while a read is under way. Without the header the
body goes at once and the answer is awaited under the read timeout (botocore's own HTTP client stops waiting
for the interim answer after a second).

Not bounded: sending a body to a peer that stops reading once the socket buffers are full, which waits until
the kernel gives up on the connection (aiobotocore offers no hook to set ``TCP_USER_TIMEOUT`` on its sockets).
"""

from __future__ import annotations

from typing import Any

from botocore.handlers import add_expect_header


def without_expect_continue(client: Any) -> None:
    """Stop ``client`` (an aiobotocore S3 client) from asking for ``Expect: 100-continue``."""
    client.meta.events.unregister("before-call.s3", add_expect_header)
