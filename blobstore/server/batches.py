"""Batch routes: put, delete and stat of up to 1,000 keys in one request, over ``Tenant.put_many``,
``delete_many`` and ``stat_many``.

Each answers 200 with one outcome per item, in order: the status the item's single request would have
answered (201/200 for a put, 204 for a delete, 200 for a stat, or the error's), with its object or its
problem document. A malformed request, a token without the scope, or a body over :data:`MAX_BATCH_BODY`
fails the whole request, and then nothing is stored or deleted.

A batch put's body (blobstore.wire.BATCH_TYPE) is read to its end, each item's bytes into a file of their
own, before anything is stored: a body that ends early or breaks its framing stores nothing, as a single
PUT cut short does. An item larger than the store's maximum object size is not kept (ObjectTooLarge for
it); quotas are decided item by item as the items are bound, as ``put_many`` decides them.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from blobstore import wire
from blobstore.core.ingest import PutData
from blobstore.errors import BlobStoreError, InvalidInput, NotFound, ObjectTooLarge, StorageUnavailable
from blobstore.model.results import BlobInfo
from blobstore.server import metrics, problems
from blobstore.server.auth import Deleter, Reader, Writer
from blobstore.server.objects import UPLOAD_PIECE
from blobstore.server.problems import error_responses
from blobstore.server.schemas import BatchKeys, BatchManifest, BatchPutItem, BatchResults, json_body_openapi, parse_json
from blobstore.store import PutItem

router = APIRouter(prefix=wire.API_PREFIX + "/tenants/{tenant}/batch", tags=["batches"])

#: The most bytes a batch put's body may hold (413 ObjectTooLarge beyond); a module attribute, so tests lower it.
MAX_BATCH_BODY = wire.MAX_BATCH_BODY
_CHUNK_HEAD = re.compile(rb"[0-9a-f]{1,8}")
_BATCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            wire.BATCH_TYPE: {
                "schema": {
                    "type": "string",
                    "format": "binary",
                    "description": "A line of JSON (BatchManifest), then each item's bytes as hex-length chunks "
                    "ending with a 0 line (see docs/http-api.md).",
                }
            }
        },
    }
}
#: What a batch item's StorageUnavailable says: its message names the database or storage (the log has it).
_UNAVAILABLE = f"the database or the object storage is unavailable; retry after {problems.RETRY_AFTER} s"


@router.post(
    "/put",
    summary="Store up to 1,000 objects in one request",
    response_model=BatchResults,
    responses=error_responses(413),
    openapi_extra=_BATCH_BODY,
)
async def put_batch(request: Request, tenant: Writer) -> JSONResponse:
    """One outcome per item, as ``put_many``: 201 new key, 200 replaced, or the item's error (400, 404, 412,
    413, 422, 503). 413 for the whole request if the body is over its limit; 400 if it is malformed."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BATCH_BODY:
        raise _too_large()
    body = _Body(request)
    folder = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="blobstore-batch-"))
    try:
        manifest = _manifest(await body.line(wire.MAX_BATCH_MANIFEST))
        datas = [
            await _spool_item(body, folder / str(index), tenant.core.settings.max_object_size)
            for index in range(len(manifest.items))
        ]
        if not await body.at_end():
            raise InvalidInput("the batch body goes on after its last item")
        outcomes = await tenant.put_many(map(_put_item, manifest.items, datas))
    finally:
        await asyncio.to_thread(shutil.rmtree, folder, True)
    for outcome in outcomes:
        if isinstance(outcome, BlobInfo):
            metrics.record_put(outcome.deduplicated)
    return _results(
        {"status": 200 if outcome.replaced else 201, "object": outcome.to_dict()}
        if isinstance(outcome, BlobInfo)
        else _failure(outcome)
        for outcome in outcomes
    )


@router.post(
    "/delete",
    summary="Delete up to 1,000 keys in one request",
    response_model=BatchResults,
    responses=error_responses(),
    openapi_extra=json_body_openapi(BatchKeys),
)
async def delete_batch(request: Request, tenant: Deleter) -> JSONResponse:
    """One outcome per key, as ``delete_many``: 204 deleted, 404 absent (a repeated key the second time), 400."""
    body = await parse_json(request, BatchKeys)
    outcomes = await tenant.delete_many(body.keys)
    return _results(
        _failure(outcome)
        if isinstance(outcome, BlobStoreError)
        else {"status": 204}
        if outcome
        else _failure(NotFound(f"no such key: {key!r}"))
        for key, outcome in zip(body.keys, outcomes, strict=True)
    )


@router.post(
    "/stat",
    summary="Describe up to 1,000 keys in one request",
    response_model=BatchResults,
    responses=error_responses(),
    openapi_extra=json_body_openapi(BatchKeys),
)
async def stat_batch(request: Request, tenant: Reader) -> JSONResponse:
    """One outcome per key, as ``stat_many``: 200 with the object, 404 absent, 400 an invalid key."""
    body = await parse_json(request, BatchKeys)
    return _results(
        _failure(outcome) if isinstance(outcome, BlobStoreError) else {"status": 200, "object": outcome.to_dict()}
        for outcome in await tenant.stat_many(body.keys)
    )


# --- helpers ----------------------------------------------------------------------------------------


def _results(items: Any) -> JSONResponse:
    return JSONResponse({"items": list(items)})


def _failure(error: BlobStoreError) -> dict[str, Any]:
    """An item's error as its status and problem document (StorageUnavailable with a generic detail)."""
    detail = _UNAVAILABLE if isinstance(error, StorageUnavailable) else None
    response = problems.problem_response(error, detail=detail)
    return {"status": response.status_code, "problem": _json(response.body)}


def _json(body: bytes | memoryview) -> Any:
    return json.loads(bytes(body))


def _too_large() -> ObjectTooLarge:
    return ObjectTooLarge(f"a batch body holds at most {MAX_BATCH_BODY} bytes; send larger objects one PUT each")


def _manifest(line: bytes) -> BatchManifest:
    try:
        return BatchManifest.model_validate_json(line)
    except ValidationError as exc:
        where = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'manifest'}: {e['msg']}" for e in exc.errors())
        raise InvalidInput(f"invalid batch manifest: {where}") from None


def _put_item(item: BatchPutItem, data: PutData) -> PutItem:
    return PutItem(
        item.key,
        data,
        digest=item.digest,
        content_type=item.content_type,
        metadata=item.metadata,
        if_absent=item.if_absent,
        if_match=item.if_match,
        if_unmodified_since=item.if_unmodified_since,
        expires_in=item.expires_in,
    )


async def _spool_item(body: _Body, path: Path, max_size: int) -> PutData:
    """Read one item's chunks into ``path``: the path, or (over ``max_size``, its bytes then discarded as they
    arrive) a stream that fails with ObjectTooLarge when the put reads it."""
    size = 0
    pending = bytearray()
    file: IO[bytes] = await asyncio.to_thread(path.open, "wb")
    try:
        while length := await body.chunk_length():
            async for piece in body.pieces(length):
                size += len(piece)
                if size <= max_size:
                    pending += piece
                    if len(pending) >= UPLOAD_PIECE:
                        await asyncio.to_thread(file.write, pending)
                        pending.clear()
        await asyncio.to_thread(_finish, file, pending)
    except BaseException:
        file.close()
        raise
    if size > max_size:
        return _refused(ObjectTooLarge(f"the object is larger than the maximum object size of {max_size} bytes"))
    return path


def _finish(file: IO[bytes], pending: bytes | bytearray) -> None:
    with file:
        file.write(pending)


async def _refused(error: BlobStoreError) -> AsyncIterator[bytes]:
    raise error
    yield b""  # pragma: no cover - makes this an async generator


class _Body:
    """A batch body as it arrives: lines and counted bytes, at most :data:`MAX_BATCH_BODY` of them."""

    def __init__(self, request: Request) -> None:
        self._chunks = aiter(request.stream())
        self._buffer = bytearray()
        self._received = 0

    async def _fill(self) -> bool:
        """Take the next piece of the body into the buffer; False at its end."""
        chunk = await anext(self._chunks, None)
        if chunk is None:
            return False
        self._received += len(chunk)
        if self._received > MAX_BATCH_BODY:
            raise _too_large()
        self._buffer += chunk
        return True

    async def line(self, limit: int) -> bytes:
        """The next line, without its LF; InvalidInput if it is longer than ``limit`` or the body ends first."""
        scanned = 0  # the buffer up to here holds no LF: each piece is searched once
        while (end := self._buffer.find(b"\n", scanned)) < 0:
            scanned = len(self._buffer)
            if scanned > limit:
                break
            if not await self._fill():
                raise InvalidInput("the batch body ended early")
        if end < 0 or end > limit:
            raise InvalidInput(f"a line of the batch body is longer than {limit} bytes")
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        return line

    async def chunk_length(self) -> int:
        """The length of an item's next chunk; 0 at the item's end."""
        head = await self.line(8)
        if not _CHUNK_HEAD.fullmatch(head):
            raise InvalidInput(f"a chunk of the batch body starts with {head[:8]!r}, not its length in hex")
        return int(head, 16)

    async def pieces(self, length: int) -> AsyncIterator[bytes]:
        """The next ``length`` bytes, as they arrive."""
        while length:
            if not self._buffer and not await self._fill():
                raise InvalidInput("the batch body ended inside an item")
            piece = bytes(self._buffer[:length])
            del self._buffer[: len(piece)]
            length -= len(piece)
            yield piece

    async def at_end(self) -> bool:
        """True if nothing but the end of the body is left."""
        while not self._buffer:
            if not await self._fill():
                return True
        return False
