"""``blobstore serve``: the HTTP service (blobstore.server) on uvicorn."""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import click

from blobstore.cli.app import common_options, options, run
from blobstore.errors import ConfigurationError
from blobstore.extras import needs

#: Defaults of the connection limits, as in blobstore.server.connections (which loads the server stack, so not
#: imported for --help; tests/server/test_server_timeouts.py checks they agree).
HEADER_TIMEOUT_SECONDS = 20.0
BODY_TIMEOUT_SECONDS = 60.0
MAX_CONNECTIONS = 1000
#: How long the server keeps an idle connection open: longer than clients reuse one (httpx and so
#: BlobClient: 5 s) and than load balancers in front of it keep theirs (commonly 60 s), so an idle
#: connection is always closed by the client side, never under a request the client just sent.
KEEP_ALIVE_SECONDS = 75

if TYPE_CHECKING:  # the store and the server stack load when the command runs, not for --help
    import uvicorn

    from blobstore.core.config import Settings
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
    help="Run lifecycle expiry, then GC, every SECONDS in each server process (default: never; `blobstore "
    "lifecycle run` and `blobstore gc` run them from outside).",
)
@click.option(
    "--header-timeout",
    default=HEADER_TIMEOUT_SECONDS,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Close a connection whose request headers are not all in this long after it opened (or after the "
    "request's first byte, on a kept-alive connection); 408 if it sent part of them.",
)
@click.option(
    "--body-timeout",
    default=BODY_TIMEOUT_SECONDS,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="End a request (408, nothing stored) whose body sends no bytes for this long.",
)
@click.option(
    "--max-connections",
    default=MAX_CONNECTIONS,
    show_default=True,
    type=click.IntRange(min=1),
    metavar="N",
    help="Per process: a request arriving while N connections are open (idle ones too) gets an immediate 503.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    metavar="PORT",
    help="Serve Prometheus /metrics on this operator port (default: nowhere; never on --port).",
)
@click.option(
    "--metrics-host", default="127.0.0.1", show_default=True, help="Address the --metrics-port listener binds."
)
@click.option(
    "--inline-active-content",
    is_flag=True,
    help="Serve HTML, SVG, XML and JavaScript objects inline, not as attachments: only when this server has an "
    "origin (scheme, host and port) of its own, shared with no other app.",
)
@click.option(
    "--s3-port",
    type=click.IntRange(0, 65535),
    metavar="PORT",
    help="Also serve the S3 API on this port, in the same process (docs/s3-api.md; needs --workers 1 for now).",
)
@click.option(
    "--s3-region", default="us-east-1", show_default=True, metavar="REGION", help="The region S3 clients sign for."
)
@click.option(
    "--s3-domain",
    metavar="DOMAIN",
    help="Also address buckets virtual-host style: Host BUCKET.DOMAIN is bucket BUCKET (path style keeps working).",
)
@common_options
def serve(
    host: str,
    port: int,
    workers: int,
    cors_origins: tuple[str, ...],
    shutdown_timeout: int,
    gc_interval: float | None,
    header_timeout: float,
    body_timeout: float,
    max_connections: int,
    metrics_port: int | None,
    metrics_host: str,
    inline_active_content: bool,
    s3_port: int | None,
    s3_region: str,
    s3_domain: str | None,
) -> None:
    """Serve the store over HTTP, to clients in any language.

    Every request needs a token (`blobstore token create`). Any number of
    servers may share one PostgreSQL database and one bucket. Metrics are
    for the operator only: on --metrics-port, never on the tenants' port.

    \b
      blobstore serve --host 0.0.0.0 --port 8080 --workers 4
    """
    with needs("server", "blobstore serve"):  # only this command needs the server stack
        import uvicorn

        from blobstore.s3.app import DOMAIN, REGION
        from blobstore.server import access, connections, metrics
        from blobstore.server.app import BODY_TIMEOUT, CORS_ORIGINS, GC_INTERVAL, INLINE_ACTIVE_CONTENT

    if s3_port is not None and workers != 1:
        raise ConfigurationError("--s3-port serves from one process for now: use it with --workers 1")
    settings = options().settings()

    async def check(_store: BlobStore) -> None:
        """Opening the store proves the configuration (and migrates the embedded database) before any worker starts."""

    _require_free(host, port, "--port")
    if s3_port is not None:
        _require_free(host, s3_port, "--s3-port")
    run(check, creates=True, beside_a_server=True)
    os.environ["BLOBSTORE_DATABASE_URL"] = settings.database_url
    os.environ["BLOBSTORE_STORAGE_URL"] = settings.storage_url
    os.environ[CORS_ORIGINS] = ",".join(cors_origins)
    os.environ[GC_INTERVAL] = "" if gc_interval is None else repr(gc_interval)
    os.environ[BODY_TIMEOUT] = repr(body_timeout)
    os.environ[INLINE_ACTIVE_CONTENT] = "1" if inline_active_content else ""
    os.environ[connections.HEADER_TIMEOUT] = repr(header_timeout)
    os.environ[REGION] = s3_region
    os.environ[DOMAIN] = s3_domain or ""
    connections.raise_open_files_limit()
    with contextlib.ExitStack() as stack:
        stack.enter_context(_metrics_directory(workers))
        if metrics_port is not None:  # in this process: the only process, or the supervisor of the workers
            try:
                stack.enter_context(metrics.listening(metrics_host, metrics_port))
            except OSError as exc:
                raise ConfigurationError(
                    f"--metrics-port: cannot listen on {metrics_host}:{metrics_port}: {exc}"
                ) from exc
        common: dict[str, Any] = {
            "factory": True,
            "host": host,
            "log_level": "info",
            "log_config": access.log_config(),
            "access_log": False,
            "timeout_graceful_shutdown": shutdown_timeout,
            "timeout_keep_alive": KEEP_ALIVE_SECONDS,
            "http": connections.PROTOCOL,
            "limit_concurrency": max_connections,
            "server_header": False,
        }
        if s3_port is None:
            uvicorn.run("blobstore.server.app:app_from_env", port=port, workers=workers, **common)
            return
        import asyncio  # not for --help

        asyncio.run(_serve_both(settings, common, port, s3_port, body_timeout))


def _require_free(host: str, port: int, option: str) -> None:
    """ConfigurationError, in one line, if ``host:port`` cannot be listened on (another process holds it, say);
    binding as uvicorn will (address reuse on), so a port only in TIME_WAIT passes. Port 0 (any) always passes."""
    if port == 0:
        return
    try:
        with socket.create_server((host, port), family=_family(host)):
            pass
    except OSError as exc:
        raise ConfigurationError(f"{option}: cannot listen on {host}:{port}: {exc.strerror or exc}") from exc


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


async def _serve_both(settings: Settings, common: dict[str, Any], port: int, s3_port: int, body_timeout: float) -> None:
    """The native API on ``port`` and the S3 API on ``s3_port``, in this event loop, over one store (one
    connection pool): both timed into the metrics, logged, timed out and shut down alike."""
    import uvicorn

    from blobstore.s3.app import app_from_env as s3_app_from_env
    from blobstore.s3.app import error_response
    from blobstore.server import metrics
    from blobstore.server.access import AccessMiddleware
    from blobstore.server.app import app_from_env
    from blobstore.server.connections import BodyTimeoutMiddleware
    from blobstore.server.shutdown import ShutdownMiddleware
    from blobstore.store import BlobStore

    served = {**common, "factory": False}
    store = await BlobStore.open(settings, observer=metrics.OBSERVER)
    try:
        s3 = s3_app_from_env(store)
        s3.add_middleware(BodyTimeoutMiddleware, seconds=body_timeout)
        s3.add_middleware(ShutdownMiddleware, answer=lambda error, scope: error_response(error, scope["path"], "-"))
        s3.add_middleware(AccessMiddleware)
        main = uvicorn.Server(uvicorn.Config(app_from_env(store), port=port, **served))
        beside = uvicorn.Server(uvicorn.Config(s3, port=s3_port, **served))
        await _serve_beside(main, beside)
    finally:
        await store.close()


async def _serve_beside(main: uvicorn.Server, beside: uvicorn.Server) -> None:
    """Run two uvicorn servers in this event loop until either stops (a signal stops the one whose handler came
    last, and so both; a port already taken stops both)."""
    import asyncio

    task = asyncio.create_task(beside.serve())
    task.add_done_callback(lambda _: setattr(main, "should_exit", True))
    try:
        await main.serve()
    finally:
        beside.should_exit = True
        await task


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
