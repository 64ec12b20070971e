"""Tenant-wide routes: the missing-digest probe and the tenant's own usage. Neither reveals other tenants."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from blobstore import wire
from blobstore.accounting import holdings
from blobstore.server.auth import Reader
from blobstore.server.problems import error_responses
from blobstore.server.schemas import MissingRequest, MissingResponse, Usage, json_body_openapi, parse_json

router = APIRouter(prefix=wire.API_PREFIX + "/tenants/{tenant}", tags=["tenants"])


@router.post(
    "/digests/missing",
    summary="Which of these digests this tenant does not hold",
    response_model=MissingResponse,
    responses=error_responses(),
    openapi_extra=json_body_openapi(MissingRequest),
)
async def missing_digests(request: Request, tenant: Reader) -> JSONResponse:
    """A digest only other tenants hold is missing: upload it (dedup still stores it once)."""
    body = await parse_json(request, MissingRequest)
    return JSONResponse({"missing": await holdings.missing(tenant.core, tenant.name, body.digests)})


@router.get("/usage", summary="This tenant's own usage", response_model=Usage, responses=error_responses())
async def usage(tenant: Reader) -> JSONResponse:
    """Keys, logical bytes, limits and bytes read this UTC month; nothing about shared bytes."""
    return JSONResponse((await holdings.usage(tenant.core, tenant.name)).to_dict())
