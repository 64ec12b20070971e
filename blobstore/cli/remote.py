"""Remote mode of the object commands (put get stat ls rm cp): with ``BLOBSTORE_SERVER_URL`` and
``BLOBSTORE_TOKEN`` set (or ``--server`` / ``--token``) they talk to a blobstore server through
``BlobClient`` instead of opening the database and storage, with the same output and the same errors.

The token names its tenant; a command on another tenant fails with Forbidden before anything is sent.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import click

from blobstore.cli.app import run, run_async
from blobstore.cli.location import SERVER_URL, TOKEN
from blobstore.errors import ConfigurationError, Forbidden, StorageUnavailable
from blobstore.extras import needs

if TYPE_CHECKING:
    from blobstore.contract import TenantAPI


T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])
_GIVEN = "blobstore.remote"


def _remember(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None and param.name is not None:
        ctx.meta.setdefault(_GIVEN, {})[param.name] = value


def remote_options(command: F) -> F:
    """Add ``--server URL`` and ``--token TOKEN`` (each overriding its environment variable)."""
    command = click.option(
        "--token",
        metavar="TOKEN",
        expose_value=False,
        callback=_remember,
        help=f"With --server: the token to use; overrides {TOKEN} (which keeps it out of the process list).",
    )(command)
    return click.option(
        "--server",
        metavar="URL",
        expose_value=False,
        callback=_remember,
        help=f"Send the command to the blobstore server at URL; overrides {SERVER_URL}.",
    )(command)


@dataclass(frozen=True)
class Remote:
    """The server a command talks to, and where its URL came from (``--server`` or the variable)."""

    url: str
    token: str
    source: str


def server() -> Remote | None:
    """The server the options or environment name, or None for local mode; ConfigurationError if only one of
    URL and token is given, or the URL is not an http(s) URL."""
    given = click.get_current_context().meta.get(_GIVEN, {})
    url = given.get("server") or os.environ.get(SERVER_URL) or None
    token = given.get("token") or os.environ.get(TOKEN) or None
    if url is None and token is None:
        return None
    if url is None or token is None:
        missing = SERVER_URL if url is None else TOKEN
        raise ConfigurationError(f"{missing} is not set: remote mode needs both {SERVER_URL} and {TOKEN}")
    source = "--server" if given.get("server") else SERVER_URL
    parsed = urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ConfigurationError(
            f"{source}: {url!r} is not a server URL: give the scheme and host, e.g. http://127.0.0.1:8080"
        )
    return Remote(url, token, source)


def on_tenant(tenant: str, work: Callable[[TenantAPI], Awaitable[T]], *, creates: bool = False) -> T:
    """Run ``work`` on ``tenant``: the local store's Tenant (a new store only if the command ``creates``), or a
    BlobClient of the server in remote mode."""
    target = server()
    if target is None:
        return run(lambda store: work(store.tenant(tenant)), creates=creates)

    with needs("client", f"remote mode ({target.source})"):
        import httpx

        from blobstore.client import BlobClient

    async def remote() -> T:
        try:
            async with BlobClient(target.url, target.token) as client:
                if client.name != tenant:
                    raise Forbidden(f"{TOKEN} is a token of tenant {client.name!r}, not {tenant!r}")
                return await work(client)
        except StorageUnavailable as exc:
            if not isinstance(exc.__cause__, httpx.TransportError):
                raise  # the server answered: its storage is unavailable
            raise StorageUnavailable(
                f"{exc} (the URL is from {target.source}): check that `blobstore serve` runs there"
            ) from exc.__cause__

    return run_async(remote)
