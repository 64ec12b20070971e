"""Object routes: PUT, GET, HEAD and DELETE of one key, copy, and listing. Bodies stream both ways.

Handlers parse headers, call the same ``Tenant`` methods the library exposes and
shape the reply; every error becomes a problem document in blobstore.server.problems.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from blobstore import wire
from blobstore.accounting.quotas import Allowance
from blobstore.asgi.responses import ClosingStreamingResponse, verified_body
from blobstore.errors import InvalidInput, NotFound, RangeNotSatisfiable
from blobstore.model.durations import parse_duration
from blobstore.model.ranges import ByteRange, parse_range
from blobstore.model.results import BlobInfo, Page
from blobstore.server import metrics
from blobstore.server.auth import Deleter, Reader, SignedReader, SignedWriter, Writer, quota_set
from blobstore.server.conditions import IfMatch, IfUnmodifiedSince, write_conditions
from blobstore.server.keypath import ObjectKey
from blobstore.server.problems import error_responses
from blobstore.server.schemas import CopyRequest, ObjectInfo, ObjectPage, json_body_openapi, parse_json
from blobstore.store import MAX_LIST_LIMIT, BlobStream, Tenant

router = APIRouter(prefix=wire.API_PREFIX + "/tenants/{tenant}", tags=["objects"])

#: Upload bytes are handed to the store in pieces of about this size.
UPLOAD_PIECE = 1024 * 1024
#: A listing's JSON is sent in pieces of about this size, as it is encoded.
LIST_PIECE = 64 * 1024
_BINARY = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
_RAW_BODY = {"requestBody": {"required": False, "content": _BINARY}}
#: An object's bytes come back with the content type they were stored with.
_ANY_BYTES = {"*/*": {"schema": {"type": "string", "format": "binary"}}}


#: What JSON Schema can say of prefixes and digests (the key's own rules are in blobstore.server.keypath).
PREFIX_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*$"
DIGEST_PATTERN = r"^[0-9a-f]{64}$"
Digest = Annotated[
    str | None,
    Header(
        alias=wire.DIGEST,
        description="The digest the body must hash to (422 if not).",
        json_schema_extra={"pattern": DIGEST_PATTERN},
    ),
]
CopyDigest = Annotated[
    str | None,
    Header(
        alias=wire.COPY_DIGEST,
        description="Put by digest, without a body: bytes this tenant already holds.",
        json_schema_extra={"pattern": DIGEST_PATTERN},
    ),
]
ExpiresIn = Annotated[
    str | None,
    Header(
        alias=wire.EXPIRES_IN,
        description="The key expires this long after it is stored, whatever lifecycle rules say: seconds, or a "
        "number with a unit of s, m, h, d or w (2w, 7d, 12h, 30m, 3600s), at most 36500d (docs/lifecycle.md).",
        json_schema_extra={"pattern": r"^[0-9]{1,12}[smhd]?$"},
    ),
]
IfNoneMatch = Annotated[str | None, Header(alias="if-none-match")]
IfAbsent = Annotated[
    str | None,
    Header(
        alias="if-none-match", description="* : store only if the key is absent", json_schema_extra={"pattern": r"^\*$"}
    ),
]


# --- writes -----------------------------------------------------------------------------------------


@router.put(
    "/objects/{key:anykey}",
    status_code=201,
    summary="Store an object (streamed body), or put by digest",
    response_model=ObjectInfo,
    responses={
        200: {"model": ObjectInfo, "description": "An existing key was replaced"},
        **error_responses(404, 412, 413, 422),
    },
    openapi_extra=_RAW_BODY,
)
async def put_object(
    request: Request,
    tenant: SignedWriter,
    key: ObjectKey,
    digest: Digest = None,
    copy_digest: CopyDigest = None,
    if_none_match: IfAbsent = None,
    if_match: IfMatch = None,
    if_unmodified_since: IfUnmodifiedSince = None,
    expires_in: ExpiresIn = None,
) -> Response:
    """``X-Blobstore-Meta-<name>`` headers become metadata. 201 for a new key, 200 when one was replaced.
    If-Match, If-Unmodified-Since and If-None-Match: * make it conditional (412 if the key is in another version).
    X-Blobstore-Expires-In gives the key its own expiry."""
    if if_none_match is not None and if_none_match.strip() != "*":
        raise InvalidInput("PUT supports only If-None-Match: * (store only if the key does not exist)")
    if_absent = if_none_match is not None
    when = write_conditions(if_match, if_unmodified_since)
    metadata = wire.metadata_from_headers(request.headers.items())
    content_type = request.headers.get("content-type")  # not a documented parameter: OpenAPI describes it per body
    declared = _content_length(request)
    put = partial(
        tenant.put,
        key,
        content_type=content_type,
        metadata=metadata,
        if_absent=if_absent,
        if_match=when.if_match,
        if_unmodified_since=when.if_unmodified_since,
        expires_in=None if expires_in is None else parse_duration(expires_in, what=wire.EXPIRES_IN),
    )
    if copy_digest is not None:
        if digest is not None and digest != copy_digest:
            raise InvalidInput(f"{wire.COPY_DIGEST} and {wire.DIGEST} name different digests")
        await _expect_no_body(request, declared)
        info = await put(digest=copy_digest)
    else:
        allowance = await tenant.allowance(key, if_absent=if_absent, quota_set=quota_set(request))
        allowance.check(declared or 0)  # 413 from the headers alone, before a byte of the body is read
        info = await put(_body(request, declared, allowance), digest=digest)
    metrics.record_put(info.deduplicated)
    status = 200 if info.replaced else 201  # the binding's own outcome, decided in the put's transaction
    return JSONResponse(info.to_dict(), status_code=status, headers={"etag": wire.etag(info.digest)})


@router.post(
    "/copy",
    status_code=201,
    summary="Make a key a new reference to another key's bytes",
    response_model=ObjectInfo,
    responses=error_responses(404, 412, 413),
    openapi_extra=json_body_openapi(CopyRequest),
)
async def copy_object(request: Request, tenant: Writer) -> JSONResponse:
    """No bytes move; ``if_absent`` fails with 412 when ``to`` exists."""
    body = await parse_json(request, CopyRequest)
    info = await tenant.copy(body.source, body.to, if_absent=body.if_absent)
    return JSONResponse(info.to_dict(), status_code=201, headers={"etag": wire.etag(info.digest)})


@router.delete("/objects/{key:anykey}", status_code=204, summary="Delete a key", responses=error_responses(404, 412))
async def delete_object(
    tenant: Deleter, key: ObjectKey, if_match: IfMatch = None, if_unmodified_since: IfUnmodifiedSince = None
) -> Response:
    """The bytes stay while any other reference to them remains. If-Match and If-Unmodified-Since make it
    conditional (412 if the key is in another version; with If-Match, also if it is missing)."""
    when = write_conditions(if_match, if_unmodified_since)
    if not await tenant.delete(key, if_match=when.if_match, if_unmodified_since=when.if_unmodified_since):
        raise NotFound(f"no such key: {key!r}")
    return Response(status_code=204)


# --- reads ------------------------------------------------------------------------------------------


@router.get(
    "/objects",
    summary="List keys by prefix, a page at a time",
    response_model=ObjectPage,
    responses=error_responses(),
)
async def list_objects(
    tenant: Reader,
    prefix: Annotated[
        str,
        Query(description="Only keys starting with this (literally).", json_schema_extra={"pattern": PREFIX_PATTERN}),
    ] = "",
    limit: Annotated[int, Query(ge=1, le=MAX_LIST_LIMIT)] = 1000,
    after: Annotated[
        str | None,
        Query(
            description="Start after this key: the previous page's next_after.",
            json_schema_extra={"pattern": PREFIX_PATTERN},
        ),
    ] = None,
) -> StreamingResponse:
    """Keys in code-point order, at most 1,000 a page; ``next_after`` is null on the last page."""
    page = await tenant.list(prefix, limit=limit, after=after)
    return StreamingResponse(_page_json(page), media_type="application/json")


@router.head(
    "/objects/{key:anykey}",
    summary="An object's headers, without its bytes",
    responses={
        200: {"content": _ANY_BYTES, "description": "The object's headers"},
        304: {"description": "Not modified"},
        **error_responses(404),
    },
)
async def head_object(request: Request, tenant: Reader, key: ObjectKey, if_none_match: IfNoneMatch = None) -> Response:
    """The headers GET would send for the whole object."""
    info = await tenant.stat(key)
    if _matches(if_none_match, info.digest):
        return Response(status_code=304, headers=wire.not_modified_headers(info))
    return Response(headers={**_object_headers(request, info), "content-length": str(info.size)})


@router.get(
    "/objects/{key:anykey}",
    summary="Stream an object, or one range of it",
    response_class=StreamingResponse,
    responses={
        200: {"content": _ANY_BYTES, "description": "The whole object"},
        206: {"content": _ANY_BYTES, "description": "The requested range (Content-Range)"},
        304: {"description": "Not modified (If-None-Match)"},
        **error_responses(404, 416, 422),
    },
)
async def get_object(
    request: Request,
    tenant: SignedReader,
    key: ObjectKey,
    range_header: Annotated[str | None, Header(alias="range", description="bytes=a-b, bytes=a- or bytes=-n")] = None,
    if_none_match: IfNoneMatch = None,
) -> Response:
    """ETag is the digest; one range gives 206 (several ranges or bad syntax: the whole object)."""
    wanted = parse_range(range_header)
    stack = AsyncExitStack()
    try:
        stream, requested = await _open(stack, tenant, key, wanted)
        info = stream.info
        if _matches(if_none_match, info.digest):
            await stack.aclose()
            return Response(status_code=304, headers=wire.not_modified_headers(info))
        headers = _object_headers(request, info)
        status = 200
        if requested is None:
            headers["content-length"] = str(info.size)
        else:
            if requested[0] >= info.size:
                raise RangeNotSatisfiable(f"the range starts past the object's {info.size} bytes", info.size)
            first, last = requested[0], min(requested[1], info.size - 1)
            status = 206
            headers["content-length"] = str(last - first + 1)
            headers["content-range"] = f"bytes {first}-{last}/{info.size}"
        body = await verified_body(stream, stack)
        if isinstance(body, bytes):  # read and verified whole: the read is over before the answer starts
            await stack.aclose()
            return Response(body, status_code=status, headers=headers)
        return ClosingStreamingResponse(body, stack, status_code=status, headers=headers)
    except BaseException:
        await stack.aclose()
        raise


# --- helpers ----------------------------------------------------------------------------------------


async def _page_json(page: Page) -> AsyncIterator[bytes]:
    """``{"items": [...], "next_after": ...}`` encoded an item at a time and sent in pieces of about
    :data:`LIST_PIECE` bytes, so the whole document (8 MiB for a page of keys with 8 KiB of metadata
    each) is never held at once."""
    piece = bytearray(b'{"items":[')
    for index, item in enumerate(page):
        if index:
            piece += b","
        piece += _json(item.to_dict())
        if len(piece) >= LIST_PIECE:
            yield bytes(piece)
            piece.clear()
    yield bytes(piece + b'],"next_after":' + _json(page.next_after) + b"}")


def _json(value: object) -> bytes:
    """``value`` as compact UTF-8 JSON, as JSONResponse encodes it."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


async def _open(
    stack: AsyncExitStack, tenant: Tenant, key: str, wanted: ByteRange | None
) -> tuple[BlobStream, tuple[int, int] | None]:
    """Open the key (or the range of it) inside ``stack``; return the stream and the range asked of it."""
    requested = None if wanted is None else wanted.open_range()
    if wanted is not None and requested is None:  # the last n bytes: the size comes first
        info = await tenant.stat(key)
        requested = wanted.resolve(info.size)
    stream = await stack.enter_async_context(tenant.open(key, byte_range=requested))
    return stream, requested


def _matches(if_none_match: str | None, digest: str) -> bool:
    """True if an If-None-Match header names this digest's entity tag (weakly) or is ``*``."""
    if if_none_match is None:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or wire.etag(digest) in tags


def _object_headers(request: Request, info: BlobInfo) -> dict[str, str]:
    """The object's headers; active content inline only if the app serves objects from an origin of their own."""
    return wire.object_headers(info, inline_active_content=request.app.state.inline_active_content)


def _content_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    if value is None:
        return None
    if not value.isdigit():
        raise InvalidInput(f"invalid Content-Length {value!r}")
    return int(value)


async def _body(request: Request, declared: int | None, allowance: Allowance) -> AsyncIterator[bytes]:
    """The request body as it arrives, checked against its Content-Length, in pieces of about
    :data:`UPLOAD_PIECE` bytes (the server reads the network in far smaller ones; each piece costs
    the store a thread hop to hash it and one to stage it, straight into storage where it can stage, see
    docs/gc-protocol.md). Reading stops at the first chunk that takes the body past what ``allowance`` lets
    the put store (ObjectTooLarge or QuotaExceeded): the put then stores nothing and leaves nothing."""
    received = 0
    parts: list[bytes] = []
    gathered = 0
    async for chunk in request.stream():
        received += len(chunk)
        if declared is not None and received > declared:
            raise InvalidInput(f"the body is longer than its Content-Length {declared}")
        allowance.check(received)
        parts.append(chunk)
        gathered += len(chunk)
        if gathered >= UPLOAD_PIECE:
            yield b"".join(parts)
            parts, gathered = [], 0
    if declared is not None and received != declared:
        raise InvalidInput(f"the body has {received} bytes, not its Content-Length {declared}")
    if parts:
        yield b"".join(parts)


async def _expect_no_body(request: Request, declared: int | None) -> None:
    if declared:
        raise InvalidInput(f"a put by {wire.COPY_DIGEST} takes no body")
    async for chunk in request.stream():
        if chunk:
            raise InvalidInput(f"a put by {wire.COPY_DIGEST} takes no body")
