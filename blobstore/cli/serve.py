"""``blobstore serve``: the HTTP service (blobstore.server) on uvicorn."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING

import click

from blobstore.cli.app import common_options, options, run

#: How long the server keeps an idle connection open: longer than clients reuse one (httpx and so
#: BlobClient: 5 s) and than load balancers in front of it keep theirs (commonly 60 s), so an idle
#: connection is always closed by the client side, never under a request the client just sent.
KEEP_ALIVE_SECONDS = 75

if TYPE_CHECKING:  # the store loads when the command runs, not for --help
    from blobstore.store import BlobStore


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 256), help="Server processes.")
@click.option(
    "--cors-origin",
    "cors_origins",
    multiple=True,
    metavar="ORIGIN",
    help="Let browser pages from ORIGIN (https://host[:port]) call the API; repeatable.",
)
@click.option(
    "--shutdown-timeout",
    default=30,
    show_default=True,
    type=click.IntRange(min=0),
    metavar="SECONDS",
    help="On SIGTERM, stop accepting and give requests in flight this long to finish (then cut them).",
)
@click.option(
    "--gc-interval",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Run GC every SECONDS in each server process (default: never; `blobstore gc` runs it from outside).",
)
@common_options
def serve(
    host: str,
    port: int,
    workers: int,
    cors_origins: tuple[str, ...],
    shutdown_timeout: int,
    gc_interval: float | None,
) -> None:
    """Serve the store over HTTP, to clients in any language.

    Every request needs a token (`blobstore token create`). Any number of
    servers may share one PostgreSQL database and one bucket.

    \b
      blobstore serve --host 0.0.0.0 --port 8080 --workers 4
    """
    import uvicorn  # only this command needs the server stack

    from blobstore.server import access
    from blobstore.server.app import CORS_ORIGINS, GC_INTERVAL

    settings = options().settings()

    async def check(_store: BlobStore) -> None:
        """Opening the store proves the configuration (and migrates the embedded database) before any worker starts."""

    run(check)
    os.environ["BLOBSTORE_DATABASE_URL"] = settings.database_url
    os.environ["BLOBSTORE_STORAGE_URL"] = settings.storage_url
    os.environ[CORS_ORIGINS] = ",".join(cors_origins)
    os.environ[GC_INTERVAL] = "" if gc_interval is None else repr(gc_interval)
    with _metrics_directory(workers):
        uvicorn.run(
            "blobstore.server.app:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="info",
            log_config=access.log_config(),
            access_log=False,
            timeout_graceful_shutdown=shutdown_timeout,
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
            server_header=False,
        )


@contextlib.contextmanager
def _metrics_directory(workers: int) -> Iterator[None]:
    """With several workers, a fresh PROMETHEUS_MULTIPROC_DIR for their metrics (unless one is set), removed after."""
    if workers == 1 or os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        yield
        return
    with tempfile.TemporaryDirectory(prefix="blobstore-metrics-") as directory:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        try:
            yield
        finally:
            del os.environ["PROMETHEUS_MULTIPROC_DIR"]


COMMANDS = [serve]
