"""A real ``blobstore serve --s3-port`` for tests of S3 clients: its S3 URL once it answers, and access keys
made with the real ``blobstore access-key create``."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.cli_helpers import invoke
from tests.support.live_server import serve_process


@dataclass(frozen=True)
class S3Server:
    """A running server: the home of its store and its S3 URL."""

    home: Path
    s3_url: str

    def access_key(self, tenant: str = "acme") -> tuple[str, str]:
        """A new access key of ``tenant`` with every scope: (id, secret)."""
        created = json.loads(invoke(["access-key", "create", tenant, "--json"], home=self.home).ok().stdout)
        return created["access_key_id"], created["secret_access_key"]


@contextlib.contextmanager
def s3_serving(home: Path) -> Iterator[S3Server]:
    """``blobstore serve --s3-port`` on the embedded store of ``home``, once its S3 port answers."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with serve_process(home, "--s3-port", str(port)):
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the S3 listener did not start"
                time.sleep(0.1)
        yield S3Server(home, url)
