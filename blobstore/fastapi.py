"""blobstore inside an existing FastAPI app: the whole HTTP API under a prefix, and the caller's ``Tenant``.

::

    app = FastAPI()
    storage = mount(app, prefix="/storage")          # the HTTP API at /storage/v1/...
    Reader = Annotated[Tenant, Depends(storage.tenant("read"))]

    @app.get("/invoices")
    async def invoices(tenant: Reader) -> list[str]:   # the tenant of the caller's token
        return [info.key for info in await tenant.list("invoices/")]

The store opens when the host app starts and closes when it stops (the API's
lifespan runs around the host's), unless one is passed in, which stays open and
is never altered: its storage and statements reach the metrics only if it was
built with ``BlobStore.open(..., observer=blobstore.server.metrics.OBSERVER)``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from blobstore.auth import tokens
from blobstore.core.config import Settings
from blobstore.core.context import Clock, utc_now
from blobstore.errors import Forbidden, Unauthorized
from blobstore.server import create_app, problems
from blobstore.server.auth import require
from blobstore.store import BlobStore, Tenant

_bearer = HTTPBearer(auto_error=False, description="A token from `blobstore token create TENANT`.")


class MountedBlobstore:
    """The blobstore API mounted in a host app: its store, and dependencies for the host's own handlers."""

    def __init__(self, api: FastAPI) -> None:
        self.api = api

    @property
    def store(self) -> BlobStore:
        """The store, once the host app has started."""
        store: BlobStore = self.api.state.blobstore
        return store

    def tenant(self, scope: str = "read") -> Callable[..., Awaitable[Tenant]]:
        """A dependency giving the ``Tenant`` of the caller's bearer token if the token has ``scope``:
        401 for a missing, invalid, expired or revoked token, 403 for a token without ``scope``."""
        tokens.validate_scopes([scope])

        async def caller_tenant(
            credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        ) -> Tenant:
            try:
                token = await tokens.authenticate(
                    self.store.core, None if credentials is None else credentials.credentials
                )
                require(token, token.tenant, scope)
            except (Unauthorized, Forbidden) as exc:
                raise HTTPException(problems.status_of(exc), str(exc), headers=problems.headers_for(exc)) from None
            return self.store.tenant(token.tenant)

        return caller_tenant


def mount(
    app: FastAPI,
    *,
    prefix: str = "/blobstore",
    store: BlobStore | None = None,
    settings: Settings | None = None,
    clock: Clock = utc_now,
    interactive_docs: bool = False,
    inline_active_content: bool = False,
) -> MountedBlobstore:
    """Mount the HTTP API (``blobstore.server``) into ``app`` under ``prefix``, over ``store`` (left open) or a
    store opened from ``settings`` (default: the environment) while ``app`` runs.

    The mount serves no metrics (operator telemetry; see blobstore.server.metrics) and, unless
    ``interactive_docs``, no ``/docs`` or ``/redoc`` pages (they would run scripts on the host's origin);
    ``{prefix}/openapi.json`` is served. Objects of types a browser runs (HTML, SVG, ...) are attachments
    unless ``inline_active_content``, which only an app on an origin of its own should ask for: inline, a
    tenant's page would open on the host's origin (sandboxed, but the host's all the same)."""
    if not prefix.startswith("/") or prefix.endswith("/"):
        raise ValueError(f"the prefix must start with / and not end with one, not {prefix!r}")
    api = create_app(
        store,
        settings=settings,
        clock=clock,
        interactive_docs=interactive_docs,
        inline_active_content=inline_active_content,
    )
    app.mount(prefix, api)
    host_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(host: FastAPI) -> AsyncIterator[Any]:
        async with api.router.lifespan_context(api), host_lifespan(host) as state:
            yield state

    app.router.lifespan_context = lifespan
    return MountedBlobstore(api)
