"""Who the caller is and what it may do: FastAPI dependencies every route declares.

The token is checked against the database on every request (revocation and
expiry take effect at once, on every server). A valid token used on another
tenant's path, or for an operation outside its scopes, gets the same 403
whether or not that tenant or key exists: nothing about the path is looked up
before the token is known to allow it. The 403 names what the token lacks: its
tenant ("this token is not for this tenant") or the scope.

GET and PUT of one object also accept a signed URL instead of a token
(blobstore.auth.signing): a request whose query carries a signature is judged by it
alone, and by whether its signing key and the token that signed it still stand.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from blobstore.auth import signing, tokens
from blobstore.auth.tokens import TokenInfo
from blobstore.errors import Forbidden
from blobstore.server.keypath import ObjectKey
from blobstore.store import BlobStore, Tenant

_bearer = HTTPBearer(
    auto_error=False,
    bearerFormat="bst~<tenant>~<id>~<secret>",
    description="A token from `blobstore token create TENANT`.",
)


def store_of(request: Request) -> BlobStore:
    """The store the app serves."""
    store: BlobStore = request.app.state.blobstore
    return store


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def caller(request: Request, credentials: Credentials) -> TokenInfo:
    """The caller's active token; Unauthorized (401) if it is missing, malformed, expired or revoked. Whether its
    tenant has a quota, read with it, goes to ``request.state`` (:func:`quota_set`)."""
    found = await tokens.authenticated(store_of(request).core, None if credentials is None else credentials.credentials)
    request.state.quota_set = found.quota_set
    return found.token


def quota_set(request: Request) -> bool:
    """False if the request's token said its tenant had no quota when it was read; True if it did, or if the
    request came without a token (a signed URL)."""
    return bool(getattr(request.state, "quota_set", True))


TenantPath = Annotated[str, Path(description="The tenant; a token works only on its own tenant's paths.")]
Caller = Annotated[TokenInfo, Depends(caller)]


def require(token: TokenInfo, tenant: str, *scopes: str) -> None:
    """Nothing if ``token`` is ``tenant``'s and has every one of ``scopes``; otherwise Forbidden, naming the tenant
    or the first scope missing. Only the token is read, so another tenant's path, existing or not, gets one answer."""
    if token.tenant != tenant:
        raise Forbidden("this token is not for this tenant")
    for scope in scopes:
        if not token.allows(tenant, scope):
            raise Forbidden(f"this token lacks the {scope!r} scope")


def allowed(request: Request, token: TokenInfo, tenant: str, *scopes: str) -> Tenant:
    """``tenant``, if ``token`` may do every one of ``scopes`` on it; Forbidden otherwise (see :func:`require`)."""
    require(token, tenant, *scopes)
    return store_of(request).tenant(tenant)


def tenant_with(scope: str) -> Callable[..., Awaitable[Tenant]]:
    """A dependency giving the path's Tenant if the caller's token is for that tenant and has ``scope``."""

    async def authorized(request: Request, tenant: TenantPath, credentials: Credentials) -> Tenant:
        return allowed(request, await caller(request, credentials), tenant, scope)

    return authorized


def signed_or_tenant_with(scope: str) -> Callable[..., Awaitable[Tenant]]:
    """Like :func:`tenant_with` for one object's path, but a request with a signed URL is judged by its signature."""

    async def authorized(
        request: Request,
        tenant: TenantPath,
        key: ObjectKey,
        credentials: Credentials,
    ) -> Tenant:
        if signing.is_signed(request.query_params):
            store = store_of(request)
            await signing.verify(store.core, request.method, tenant, key, request.query_params, request.headers)
            return store.tenant(tenant)
        return allowed(request, await caller(request, credentials), tenant, scope)

    return authorized


Reader = Annotated[Tenant, Depends(tenant_with("read"))]
Writer = Annotated[Tenant, Depends(tenant_with("write"))]
Deleter = Annotated[Tenant, Depends(tenant_with("delete"))]
SignedReader = Annotated[Tenant, Depends(signed_or_tenant_with("read"))]
SignedWriter = Annotated[Tenant, Depends(signed_or_tenant_with("write"))]
