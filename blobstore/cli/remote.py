"""Remote mode of the object commands (put get stat ls rm cp): with ``BLOBSTORE_SERVER_URL`` and
``BLOBSTORE_TOKEN`` set they talk to a blobstore server through ``BlobClient`` instead of opening the
database and storage, with the same output and the same errors.

The token names its tenant; a command on another tenant fails with Forbidden before anything is sent.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from blobstore.cli.app import run, run_async
from blobstore.errors import ConfigurationError
from blobstore.tokens import Forbidden

if TYPE_CHECKING:
    from blobstore.client import BlobClient
    from blobstore.store import Tenant

SERVER_URL = "BLOBSTORE_SERVER_URL"
TOKEN = "BLOBSTORE_TOKEN"

T = TypeVar("T")


def server() -> tuple[str, str] | None:
    """The server URL and token the environment names, or None for local mode; ConfigurationError if only
    one of the two is set."""
    url, token = os.environ.get(SERVER_URL) or None, os.environ.get(TOKEN) or None
    if url is None and token is None:
        return None
    if url is None or token is None:
        missing = SERVER_URL if url is None else TOKEN
        raise ConfigurationError(f"{missing} is not set: remote mode needs both {SERVER_URL} and {TOKEN}")
    return url, token


def on_tenant(tenant: str, work: Callable[[Tenant | BlobClient], Awaitable[T]]) -> T:
    """Run ``work`` on ``tenant``: the local store's Tenant, or a BlobClient of the server in remote mode."""
    target = server()
    if target is None:
        return run(lambda store: work(store.tenant(tenant)))
    url, token = target

    async def remote() -> T:
        from blobstore.client import BlobClient

        async with BlobClient(url, token) as client:
            if client.name != tenant:
                raise Forbidden(f"{TOKEN} is a token of tenant {client.name!r}, not {tenant!r}")
            return await work(client)

    return run_async(remote)
