"""The JSON documents of the HTTP API, as pydantic models (they make the OpenAPI document)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from blobstore.errors import InvalidInput
from blobstore.model.keys import MAX_KEY_BYTES
from blobstore.server.problems import Problem
from blobstore.store import MAX_BATCH

#: A JSON request body larger than this is refused.
MAX_JSON_BODY = 1024 * 1024

M = TypeVar("M", bound=BaseModel)


class ObjectInfo(BaseModel):
    """A key as its tenant sees it (``deduplicated``: a put found this tenant already held the bytes)."""

    tenant: str
    key: str
    digest: str
    size: int
    content_type: str | None
    metadata: dict[str, str]
    created_at: datetime
    deduplicated: bool


class ObjectPage(BaseModel):
    """One page of a listing; pass ``next_after`` as ``after`` for the next (null: no more)."""

    items: list[ObjectInfo]
    next_after: str | None


class CopyRequest(BaseModel):
    """Make ``to`` a new reference to the bytes of ``from``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    source: str = Field(alias="from", min_length=1, max_length=MAX_KEY_BYTES)
    to: str = Field(min_length=1, max_length=MAX_KEY_BYTES)
    if_absent: bool = False


class MissingRequest(BaseModel):
    """Digests to probe."""

    model_config = ConfigDict(extra="forbid")
    digests: list[Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]] = Field(max_length=1000)


class MissingResponse(BaseModel):
    """The probed digests this tenant does not hold."""

    missing: list[str]


class Usage(BaseModel):
    """This tenant's own usage: keys, logical bytes, limits and bytes read this UTC month."""

    tenant: str
    objects: int
    logical_bytes: int
    max_objects: int | None
    max_bytes: int | None
    egress_bytes_this_month: int


class Health(BaseModel):
    """Liveness or readiness."""

    status: str


def json_body_openapi(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` declaring a required JSON body of ``model``."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


async def parse_json(request: Request, model: type[M]) -> M:
    """The request's JSON body as ``model``; InvalidInput if it is too large, not JSON, or does not fit."""
    size = 0
    parts = []
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_JSON_BODY:
            raise InvalidInput(f"the JSON body is larger than {MAX_JSON_BODY} bytes")
        parts.append(chunk)
    try:
        return model.model_validate_json(b"".join(parts))
    except ValidationError as exc:
        where = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors())
        raise InvalidInput(f"invalid JSON body: {where}") from None


class SignRequest(BaseModel):
    """What to sign: one method on one key, for ``expires_in`` seconds; a PUT may bind its body's
    length, content type and digest."""

    model_config = ConfigDict(extra="forbid")
    method: Literal["GET", "PUT"]
    key: str = Field(min_length=1, max_length=MAX_KEY_BYTES)
    expires_in: int = Field(default=900, ge=1, le=7 * 86400)
    content_length: int | None = Field(default=None, ge=0)
    content_type: str | None = Field(default=None, min_length=1, max_length=255)
    digest: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")


class SignedUrlInfo(BaseModel):
    """A signed URL: use it with ``method`` and ``headers`` before ``expires_at``; it needs no token."""

    url: str
    method: str
    headers: dict[str, str]
    expires_at: datetime


class BatchKeys(BaseModel):
    """Keys to stat or delete, up to 1,000; each is judged on its own (an invalid key is that item's 400)."""

    model_config = ConfigDict(extra="forbid")
    keys: list[str] = Field(max_length=MAX_BATCH)


class BatchPutItem(BaseModel):
    """One put of a batch: the fields of a single PUT's headers. Each is checked as the single put checks it,
    failing that item alone (an invalid key, type or digest is that item's 400)."""

    model_config = ConfigDict(extra="forbid")
    key: str
    content_type: str | None = None
    metadata: dict[str, str] | None = None
    digest: str | None = Field(default=None, description="The digest the item's bytes must hash to (422 if not).")
    if_absent: bool = False
    if_match: list[str] | None = Field(default=None, description='Digests the key must hold now, or ["*"].')
    if_unmodified_since: datetime | None = None
    expires_in: int | None = Field(
        default=None, description="Seconds after it is stored that the item's key expires (X-Blobstore-Expires-In)."
    )


class BatchManifest(BaseModel):
    """The first line of a batch put: its items, in the order their bytes follow."""

    model_config = ConfigDict(extra="forbid")
    items: list[BatchPutItem] = Field(max_length=MAX_BATCH)


class BatchItemResult(BaseModel):
    """One item's outcome: the status its single request would have answered, with the object (2xx, but 204)
    or the problem document (4xx, 5xx)."""

    status: int
    object: ObjectInfo | None = None
    problem: Problem | None = None


class BatchResults(BaseModel):
    """One outcome per item, in the order of the request."""

    items: list[BatchItemResult]
