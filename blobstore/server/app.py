"""The HTTP service as a FastAPI app: ``create_app`` over a store, ``app_from_env`` for ``blobstore serve``."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from blobstore.core.config import Settings
from blobstore.core.context import Clock, utc_now
from blobstore.db import migrate
from blobstore.errors import ConfigurationError
from blobstore.server import batches, collector, drainer, metrics, objects, problems, signed, tenants
from blobstore.server.access import AccessMiddleware
from blobstore.server.auth import store_of
from blobstore.server.connections import BODY_TIMEOUT_SECONDS, BodyTimeoutMiddleware
from blobstore.server.schemas import Health
from blobstore.server.shutdown import ShutdownMiddleware
from blobstore.store import BlobStore

#: The environment variable ``blobstore serve --cors-origin`` passes its origins in.
CORS_ORIGINS = "BLOBSTORE_CORS_ORIGINS"
#: The environment variable ``blobstore serve --gc-interval`` passes its seconds in (unset or empty: no GC).
GC_INTERVAL = "BLOBSTORE_GC_INTERVAL"
#: The environment variable ``blobstore serve --body-timeout`` passes its seconds in (unset or empty: the default).
BODY_TIMEOUT = "BLOBSTORE_BODY_TIMEOUT"
#: The environment variable ``blobstore serve --inline-active-content`` sets to ``1``.
INLINE_ACTIVE_CONTENT = "BLOBSTORE_INLINE_ACTIVE_CONTENT"
#: Where ``/docs`` and ``/redoc`` load their scripts, styles and icon from: the app itself.
DOCS_ASSETS = "/docs/assets"
DESCRIPTION = """\
A content-addressed, deduplicating blob store. Every request carries
`Authorization: Bearer <token>` (from `blobstore token create`); errors are
RFC 9457 `application/problem+json` documents whose `code` is the error class.
"""


def create_app(
    store: BlobStore | None = None,
    *,
    settings: Settings | None = None,
    clock: Clock = utc_now,
    cors_origins: Sequence[str] = (),
    gc_interval: float | None = None,
    body_timeout: float = BODY_TIMEOUT_SECONDS,
    interactive_docs: bool = True,
    inline_active_content: bool = False,
) -> FastAPI:
    """The HTTP API over ``store`` (left open), or over a store opened from ``settings`` (default: the
    environment) when the app starts and closed when it stops. Browser pages from ``cors_origins``
    (``https://host[:port]``) may call it, signed URLs included. With ``gc_interval``, the app runs GC
    every that many seconds while it runs (blobstore.server.collector). A request whose body sends no bytes
    for ``body_timeout`` seconds ends with 408 (blobstore.server.connections). ``interactive_docs`` serves
    ``/docs`` and ``/redoc`` (``/openapi.json`` is always served). HTML, SVG and the other types a browser runs
    are served as attachments unless ``inline_active_content`` (objects served from an origin of their own, with
    no other app's pages or cookies); every object is sandboxed either way (blobstore.wire.content_headers).

    The store the app opens is built with its storage operations and database statements timed into
    blobstore.server.metrics (``BlobStore.open(..., observer=metrics.OBSERVER)``, blobstore.core.instrument), which
    the app does not serve: ``blobstore serve --metrics-port`` does, on an operator listener. A ``store``
    passed in is never altered: it is timed only if it was built with that observer."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:  # undone in reverse: GC, then the store
            serving = store
            if serving is None:
                serving = await BlobStore.open(settings, clock=clock, observer=metrics.OBSERVER)
                stack.push_async_callback(serving.close)
            if gc_interval is not None:
                stack.push_async_callback(_stop, asyncio.create_task(collector.collect_every(serving, gc_interval)))
            if serving.settings.spool_dir is not None:
                interval = serving.settings.spool_drain_seconds
                stack.push_async_callback(_stop, asyncio.create_task(drainer.drain_every(serving, interval)))
            app.state.blobstore = serving
            yield

    app = _fastapi(interactive_docs, title="blobstore", version=_version(), description=DESCRIPTION, lifespan=lifespan)
    app.state.inline_active_content = inline_active_content
    problems.install(app)
    app.include_router(objects.router)
    app.include_router(tenants.router)
    app.include_router(signed.router)
    app.include_router(batches.router)
    app.add_api_route("/healthz", healthz, methods=["GET"], response_model=Health, tags=["health"])
    app.add_api_route(
        "/readyz",
        readyz,
        methods=["GET"],
        response_model=Health,
        tags=["health"],
        responses=problems.error_responses(),
    )
    app.add_middleware(BodyTimeoutMiddleware, seconds=body_timeout)
    app.add_middleware(ShutdownMiddleware)
    app.add_middleware(AccessMiddleware)  # outside ShutdownMiddleware, so it logs and counts the 503 of a cut request
    if cors_origins:  # outermost, so it answers preflight requests before routing
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(cors_origins),
            allow_methods=["GET", "HEAD", "PUT", "POST", "DELETE"],
            allow_headers=["*"],
            expose_headers=["*"],  # ETag, Content-Range, X-Request-Id, metadata: pages send no credentials
            max_age=600,
        )
    return app


def _fastapi(interactive_docs: bool, **options: Any) -> FastAPI:
    """A FastAPI app with ``options``; with ``interactive_docs``, ``/docs`` (Swagger UI) and ``/redoc`` whose
    scripts and styles it serves itself under :data:`DOCS_ASSETS` (fastapi-offline's copies), never from a CDN:
    the pages work on a network without internet access."""
    if not interactive_docs:
        return FastAPI(docs_url=None, redoc_url=None, **options)
    from fastapi_offline import FastAPIOffline

    return FastAPIOffline(docs_url="/docs", redoc_url="/redoc", static_url=DOCS_ASSETS, **options)


def app_from_env(store: BlobStore | None = None) -> FastAPI:
    """The app over ``store`` or the store the environment names, with :data:`CORS_ORIGINS` (comma-separated) as
    its CORS origins, :data:`GC_INTERVAL` as its GC interval, :data:`BODY_TIMEOUT` as its body timeout and
    :data:`INLINE_ACTIVE_CONTENT` (uvicorn's factory for ``blobstore serve``)."""
    origins = [origin.strip() for origin in os.environ.get(CORS_ORIGINS, "").split(",") if origin.strip()]
    body_timeout = _seconds(BODY_TIMEOUT)
    return create_app(
        store,
        cors_origins=origins,
        gc_interval=_seconds(GC_INTERVAL),
        body_timeout=BODY_TIMEOUT_SECONDS if body_timeout is None else body_timeout,
        inline_active_content=os.environ.get(INLINE_ACTIVE_CONTENT) == "1",
    )


def _seconds(variable: str) -> float | None:
    """The positive number of seconds in environment variable ``variable``; None if it is unset or empty."""
    text = os.environ.get(variable, "")
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds < float("inf"):
        raise ConfigurationError(f"{variable} must be a positive number of seconds, not {text!r}")
    return seconds


async def _stop(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and wait until it has ended."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def healthz() -> JSONResponse:
    """Liveness: the process answers."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """Readiness: the database answers at the newest schema and the storage is usable (503 otherwise).
    With a spool (docs/spool.md) an unusable storage, or blobs of this node still spooled, is
    ``degraded: spooling`` (200: puts are still taken); a storage a node started in an outage found to be
    another store's is a 503.

    A 503 names the part that failed, never its address (no token is needed here): the cause goes to the log.
    """
    store = store_of(request)
    try:
        current = await migrate.is_current(store.database)
    except Exception as exc:
        return problems.unavailable("not ready: the database is unavailable", exc)
    if not current:
        return problems.unavailable("not ready: the database schema is not current; run `blobstore db upgrade`")
    spooling = store.settings.spool_dir is not None
    try:
        await store.storage.check()
    except ConfigurationError as exc:  # a node started in an outage found the storage to be another store's
        return problems.unavailable("not ready: the object storage is not this store's", exc)
    except Exception as exc:
        if not spooling:
            return problems.unavailable("not ready: the object storage is unavailable", exc)
        return JSONResponse({"status": "degraded: spooling"})
    if spooling and any(node.node_id == store.settings.node_id for node in await store.spool_status()):
        return JSONResponse({"status": "degraded: spooling"})
    return JSONResponse({"status": "ready"})


def _version() -> str:
    try:
        return version("blobstore")
    except PackageNotFoundError:
        return "unknown"
