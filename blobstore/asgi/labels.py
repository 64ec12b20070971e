"""What an app tells the middleware around it about a request, through its ASGI scope: the route label its
metrics and access-log line carry (the native API's come from its route templates instead), and the tenant
the request acted for (blobstore.server.access reads both)."""

from __future__ import annotations

from starlette.types import Scope

#: Scope key of the route label: a few fixed names, never anything taken from the path.
ROUTE = "blobstore.route"
#: Scope key of the tenant the request acted for.
TENANT = "blobstore.tenant"


def label(scope: Scope, *, route: str | None = None, tenant: str | None = None) -> None:
    """Record the request's route label and tenant (each only if given)."""
    if route is not None:
        scope[ROUTE] = route
    if tenant is not None:
        scope[TENANT] = tenant
