"""``POST /v1/tenants/{t}/signed-urls``: a token with ``sign`` hands out URLs for what its own scopes allow."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from blobstore import wire
from blobstore.auth import signing
from blobstore.server.auth import Caller, TenantPath, allowed
from blobstore.server.problems import error_responses
from blobstore.server.schemas import SignedUrlInfo, SignRequest, json_body_openapi, parse_json

router = APIRouter(prefix=wire.API_PREFIX + "/tenants/{tenant}", tags=["signed URLs"])


@router.post(
    "/signed-urls",
    summary="Sign a URL for a GET or PUT of one key",
    response_model=SignedUrlInfo,
    responses=error_responses(),
    openapi_extra=json_body_openapi(SignRequest),
)
async def sign_url(request: Request, tenant: TenantPath, token: Caller) -> JSONResponse:
    """Needs ``sign`` and the scope of the method (``read`` for GET, ``write`` for PUT). The URL is bound to
    the method, tenant, key, expiry and this token, and to the PUT body's length, type and digest when
    given; it stops working when the token is revoked or expires."""
    allowed(request, token, tenant, "sign")  # before the body is read: nothing is judged for a token that may not sign
    body = await parse_json(request, SignRequest)
    tenant_handle = allowed(request, token, tenant, signing.required_scope(body.method))
    signed = await signing.sign(
        tenant_handle.core,
        _base_url(request, tenant),
        tenant,
        body.method,
        body.key,
        expires_in=body.expires_in,
        content_length=body.content_length,
        content_type=body.content_type,
        digest=body.digest,
        token=token,
    )
    return JSONResponse(signed.to_dict())


def _base_url(request: Request, tenant: str) -> str:
    """The URL the API is served at, as the client reached it (with any mount prefix or proxy root path)."""
    here = str(request.url_for("sign_url", tenant=tenant))
    return here.removesuffix(f"{wire.tenant_path(tenant)}/signed-urls")
