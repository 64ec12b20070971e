"""A real ``blobstore serve --s3-port`` for tests of S3 clients: its URLs once its S3 port answers, access keys
made with the real ``blobstore access-key create``, and boto3 clients of them."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
from botocore.config import Config

from tests.support.cli_helpers import invoke
from tests.support.live_server import free_port, serve_process


@dataclass(frozen=True)
class S3Server:
    """A running server: the home of its store, its native URL and its S3 URL."""

    home: Path
    url: str
    s3_url: str

    def access_key(self, tenant: str = "acme", *args: str) -> tuple[str, str]:
        """A new access key of ``tenant`` (``args``: more options of ``access-key create``): (id, secret)."""
        created = json.loads(invoke(["access-key", "create", tenant, *args, "--json"], home=self.home).ok().stdout)
        return created["access_key_id"], created["secret_access_key"]

    def boto3(self, key_id: str, secret: str, config: Config | None = None) -> Any:
        """boto3's S3 client (its defaults but ``config``) pointed at the server: path-style, as for any
        custom endpoint."""
        return boto3.client(
            "s3",
            endpoint_url=self.s3_url,
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            region_name="us-east-1",
            config=config,
        )


@contextlib.contextmanager
def s3_serving(home: Path, *args: str) -> Iterator[S3Server]:
    """``blobstore serve --s3-port ARGS`` on the embedded store of ``home``, once its S3 port answers."""
    port = free_port()
    with serve_process(home, "--s3-port", str(port), *args) as served:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the S3 listener did not start"
                time.sleep(0.1)
        yield S3Server(home, served.url, url)
