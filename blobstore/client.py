"""``BlobClient``: the HTTP service (``blobstore serve``) with the methods and errors of ``Tenant``.

::

    async with BlobClient("http://127.0.0.1:8080", token) as acme:
        info = await acme.put("invoices/11.pdf", Path("11.pdf"), content_type="application/pdf")
        async with acme.open("invoices/11.pdf", byte_range=(0, 1023)) as stream:
            async for chunk in stream: ...

The token names its tenant. Bodies stream both ways; a whole read is checked
against its digest as it arrives (IntegrityError at the end otherwise). Problem
documents become the same error classes ``Tenant`` raises, from one table; a
server that cannot be reached is StorageUnavailable.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import dataclasses
import json
import os
import stat
from collections.abc import AsyncIterable, AsyncIterator, Callable, Collection, Iterable
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any, Self, TypeVar

import httpx

from blobstore import errors, wire
from blobstore.accounting import holdings
from blobstore.auth import tokens
from blobstore.auth.signing import DEFAULT_EXPIRY, SignedUrl
from blobstore.core.ingest import PutData, new_hasher
from blobstore.errors import BlobStoreError, IntegrityError, InvalidInput, NotFound, StorageUnavailable
from blobstore.model.durations import validate_expires_in
from blobstore.model.keys import (
    validate_byte_range,
    validate_digest,
    validate_key,
    validate_media_type,
    validate_prefix,
)
from blobstore.model.preconditions import ANY, Precondition, expect
from blobstore.model.results import BlobInfo, Page
from blobstore.storage.base import CHUNK_SIZE
from blobstore.store import MAX_BATCH, MAX_LIST_LIMIT, BlobStream, DeleteOutcome, PutItem, PutOutcome, StatOutcome

#: Back from a problem document's ``code`` (the class name) to the error class, from the one table the server
#: answers from, blobstore.errors.STATUS (any other code: BlobStoreError).
ERRORS: dict[str, type[BlobStoreError]] = {cls.__name__: cls for cls in errors.STATUS}

_RANGE_NOT_SATISFIABLE = 416
T = TypeVar("T")
#: An item's data as a batch put sends it: a file to open when its turn comes, bytes, or a stream.
_Source = Path | bytes | AsyncIterable[bytes]
#: The most bytes of data one batch put request carries: half the server's body limit, which leaves room for
#: the manifest (at most ``wire.MAX_BATCH_MANIFEST``) and the framing.
BATCH_BYTES = wire.MAX_BATCH_BODY // 2


class BlobClient:
    """One tenant of a blobstore server, reached with one of that tenant's tokens."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 60.0) -> None:
        self.name = tokens.tenant_of(token)
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- writes ------------------------------------------------------------------------------------

    async def put(
        self,
        key: str,
        data: PutData | None = None,
        *,
        digest: str | None = None,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
        if_absent: bool = False,
        if_match: str | Collection[str] | None = None,
        if_unmodified_since: datetime | None = None,
        expires_in: int | None = None,
    ) -> BlobInfo:
        """As ``Tenant.put``: bytes, a path, a binary file or an async iterable of bytes, streamed to the server."""
        validate_key(key)
        headers = _put_headers(content_type, metadata)
        headers.update(_condition_headers(expect(if_match, if_unmodified_since, if_absent=if_absent)))
        if validate_expires_in(expires_in) is not None:
            headers[wire.EXPIRES_IN] = str(expires_in)
        if digest is not None:
            validate_digest(digest)
        if data is None:
            if digest is None:
                raise InvalidInput("put needs data, or the digest of bytes this tenant already holds")
            headers[wire.COPY_DIGEST] = digest
            content: bytes | AsyncIterable[bytes] = b""
        else:
            content = await _content(data)
            if digest is not None:
                headers[wire.DIGEST] = digest
        response = await self._request("PUT", wire.object_path(self.name, key), content=content, headers=headers)
        replaced = response.status_code == httpx.codes.OK  # the server answers 201 for a new key
        return dataclasses.replace(wire.info_from_json(response.json()), replaced=replaced)

    async def copy(self, src_key: str, dst_key: str, *, if_absent: bool = False) -> BlobInfo:
        """As ``Tenant.copy``: a new reference, no bytes move."""
        validate_key(src_key)
        validate_key(dst_key)
        body = {"from": src_key, "to": dst_key, "if_absent": if_absent}
        response = await self._request("POST", f"{wire.tenant_path(self.name)}/copy", json=body)
        return wire.info_from_json(response.json())

    async def delete(
        self,
        key: str,
        *,
        if_match: str | Collection[str] | None = None,
        if_unmodified_since: datetime | None = None,
    ) -> bool:
        """As ``Tenant.delete``: True if the key existed (PreconditionFailed if it is in another version)."""
        validate_key(key)
        headers = _condition_headers(expect(if_match, if_unmodified_since))
        try:
            await self._request("DELETE", wire.object_path(self.name, key), headers=headers)
        except NotFound:
            return False
        return True

    async def put_many(self, items: Iterable[PutItem]) -> builtins.list[PutOutcome]:
        """As ``Tenant.put_many``: one outcome per item, in order, decided as if the puts ran one after another.

        Items go in as few ``POST .../batch/put`` requests as the body limit allows, their bytes streamed; an
        item of unknown length (a file object or a stream) or over :data:`BATCH_BYTES` goes as a PUT of its
        own, in its turn. An item refused here (an invalid key, type, metadata or condition, a repeated key,
        data that is a str or a missing file) gets that error and is not sent."""
        batch = _check_batch(items)
        outcomes: dict[int, PutOutcome] = {}
        group: builtins.list[tuple[int, dict[str, Any], _Source]] = []
        group_bytes = 0
        seen: set[str] = set()
        for index, item in enumerate(batch):
            try:
                fields = _manifest_item(item)
                if item.key in seen:
                    raise InvalidInput(f"key {item.key!r} appears more than once in this batch")
                seen.add(item.key)
                source = await _batch_source(item.data)
            except BlobStoreError as exc:
                outcomes[index] = exc
                continue
            size = _length_of(source)
            if size is None or size > BATCH_BYTES or group_bytes + size > BATCH_BYTES:
                outcomes.update(await self._put_group(group))
                group, group_bytes = [], 0
            if size is None or size > BATCH_BYTES:
                outcomes[index] = await self._put_alone(item)
            else:
                group.append((index, fields, source))
                group_bytes += size
        outcomes.update(await self._put_group(group))
        return [outcomes[index] for index in range(len(batch))]

    async def _put_group(self, group: builtins.list[tuple[int, dict[str, Any], _Source]]) -> dict[int, PutOutcome]:
        """The outcomes of one batch put request of ``group`` (none for an empty group), by item index."""
        if not group:
            return {}
        body = _batch_body([(fields, source) for _index, fields, source in group])
        answers = await self._batch("put", content=body, headers={"content-type": wire.BATCH_TYPE})
        return {index: _put_outcome(answer) for (index, _, _), answer in zip(group, answers, strict=True)}

    async def _put_alone(self, item: PutItem) -> PutOutcome:
        """One item as a PUT of its own: its BlobInfo or its error."""
        try:
            return await self.put(
                item.key,
                item.data,
                digest=item.digest,
                content_type=item.content_type,
                metadata=item.metadata,
                if_absent=item.if_absent,
                if_match=item.if_match,
                if_unmodified_since=item.if_unmodified_since,
                expires_in=item.expires_in,
            )
        except BlobStoreError as exc:
            return exc

    async def delete_many(self, keys: Iterable[str]) -> builtins.list[DeleteOutcome]:
        """As ``Tenant.delete_many``, in one request (``POST .../batch/delete``)."""
        return [_delete_outcome(answer) for answer in await self._batch("delete", json={"keys": _check_batch(keys)})]

    # --- reads -------------------------------------------------------------------------------------

    async def stat(self, key: str) -> BlobInfo:
        """As ``Tenant.stat`` (one HEAD request)."""
        validate_key(key)
        try:
            response = await self._request("HEAD", wire.object_path(self.name, key))
        except NotFound:  # a HEAD answer has no body to say which key; say it as Tenant.stat does
            raise NotFound(f"no such key: {key!r}") from None
        return wire.info_from_headers(self.name, key, int(response.headers["content-length"]), response.headers)

    async def stat_many(self, keys: Iterable[str]) -> builtins.list[StatOutcome]:
        """As ``Tenant.stat_many``, in one request (``POST .../batch/stat``)."""
        answers = await self._batch("stat", json={"keys": _check_batch(keys)})
        return [_outcome(answer, lambda info, _status: info) for answer in answers]

    async def exists(self, key: str) -> bool:
        """True if the key exists for this tenant."""
        try:
            await self.stat(key)
        except NotFound:
            return False
        return True

    async def get(self, key: str) -> bytes:
        """The whole value, verified against its digest (IntegrityError otherwise)."""
        async with self.open(key) as stream:
            return await stream.read()

    @contextlib.asynccontextmanager
    async def open(self, key: str, byte_range: tuple[int, int] | None = None) -> AsyncIterator[BlobStream]:
        """As ``Tenant.open``: stream the value or the inclusive ``byte_range`` of it (clamped; past the end: empty)."""
        validate_key(key)
        wanted = validate_byte_range(byte_range)
        headers = {} if wanted is None else {"range": f"bytes={wanted[0]}-{wanted[1]}"}
        request = self._http.build_request("GET", wire.object_path(self.name, key), headers=headers)
        response = await self._send(request, stream=True)
        try:
            if response.status_code == _RANGE_NOT_SATISFIABLE:
                yield BlobStream(await self.stat(key), _no_chunks())
                return
            await _raise_for_problem(response)
            content_range = response.headers.get("content-range")
            size = int(content_range.rpartition("/")[2]) if content_range else int(response.headers["content-length"])
            info = wire.info_from_headers(self.name, key, size, response.headers)
            expected = int(response.headers["content-length"])
            yield BlobStream(info, _verified(response, key, expected, info.digest if content_range is None else None))
        finally:
            await response.aclose()

    async def list(self, prefix: str = "", *, limit: int = 1000, after: str | None = None) -> Page:
        """As ``Tenant.list``: keys starting with ``prefix`` in code-point order, after ``after``."""
        validate_prefix(prefix)
        if after is not None:
            validate_prefix(after)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST_LIMIT:
            raise InvalidInput(f"limit must be an integer from 1 to {MAX_LIST_LIMIT}, not {limit!r}")
        params: dict[str, Any] = {"prefix": prefix, "limit": limit}
        if after is not None:
            params["after"] = after
        body = (await self._request("GET", f"{wire.tenant_path(self.name)}/objects", params=params)).json()
        return Page([wire.info_from_json(item) for item in body["items"]], body["next_after"])

    async def missing(self, digests: Iterable[str]) -> builtins.list[str]:
        """Those of ``digests`` this tenant does not hold (other tenants' bytes count as missing)."""
        body = {"digests": list(digests)}
        response = await self._request("POST", f"{wire.tenant_path(self.name)}/digests/missing", json=body)
        return list(response.json()["missing"])

    async def usage(self) -> holdings.Usage:
        """This tenant's own usage and limits."""
        return holdings.Usage(**(await self._request("GET", f"{wire.tenant_path(self.name)}/usage")).json())

    async def sign_url(
        self,
        key: str,
        method: str = "GET",
        *,
        expires_in: int = int(DEFAULT_EXPIRY.total_seconds()),
        content_length: int | None = None,
        content_type: str | None = None,
        digest: str | None = None,
        base_url: str | None = None,
    ) -> SignedUrl:
        """A URL that does ``method`` (GET or PUT) on ``key`` without a token for ``expires_in`` seconds
        (at most 7 days). The token needs ``sign`` plus ``read`` (GET) or ``write`` (PUT). A PUT may bind
        the body's length, content type and digest: the upload must then send exactly those. The URL is
        the server's (as it saw this request), or under ``base_url`` when given (a public name for it)."""
        validate_key(key)
        body = {
            "method": method,
            "key": key,
            "expires_in": expires_in,
            "content_length": content_length,
            "content_type": content_type,
            "digest": digest,
        }
        response = await self._request("POST", f"{wire.tenant_path(self.name)}/signed-urls", json=body)
        signed = SignedUrl.from_dict(response.json())
        if base_url is None:
            return signed
        path = signed.url[signed.url.index(f"{wire.tenant_path(self.name)}/objects/") :]
        return dataclasses.replace(signed, url=base_url.rstrip("/") + path)

    # --- transport ---------------------------------------------------------------------------------

    async def _batch(self, operation: str, **kwargs: Any) -> builtins.list[dict[str, Any]]:
        """The per-item answers of ``POST .../batch/<operation>``."""
        response = await self._request("POST", f"{wire.tenant_path(self.name)}/batch/{operation}", **kwargs)
        return list(response.json()["items"])

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = await self._send(self._http.build_request(method, path, **kwargs))
        await _raise_for_problem(response)
        return response

    async def _send(self, request: httpx.Request, *, stream: bool = False) -> httpx.Response:
        try:
            return await self._http.send(request, stream=stream)
        except httpx.TransportError as exc:
            reason = str(exc) or type(exc).__name__
            raise StorageUnavailable(f"cannot reach the blobstore server at {request.url}: {reason}") from exc


def _check_batch(items: Iterable[Any]) -> builtins.list[Any]:
    """The items as a list; InvalidInput if there are more than :data:`MAX_BATCH` (nothing is sent)."""
    batch = list(items)
    if len(batch) > MAX_BATCH:
        raise InvalidInput(f"at most {MAX_BATCH} items per batch, got {len(batch)}")
    return batch


def _outcome(answer: dict[str, Any], success: Callable[[BlobInfo, int], T]) -> T | BlobStoreError:
    """One item of a batch answer: ``success`` of its object and status, or its problem as the error it names."""
    if "problem" in answer:
        return _error(answer["problem"])
    return success(wire.info_from_json(answer["object"]), answer["status"])


def _error(problem: dict[str, Any]) -> BlobStoreError:
    """The error a problem document names (its ``code``; an unknown one: BlobStoreError)."""
    return ERRORS.get(problem["code"], BlobStoreError)(problem["detail"])


def _put_outcome(answer: dict[str, Any]) -> PutOutcome:
    return _outcome(answer, lambda info, status: dataclasses.replace(info, replaced=status == httpx.codes.OK))


def _delete_outcome(answer: dict[str, Any]) -> DeleteOutcome:
    """204: deleted; 404: absent; otherwise the item's error."""
    if answer["status"] == httpx.codes.NOT_FOUND:
        return False
    return _error(answer["problem"]) if "problem" in answer else True


async def _batch_source(data: object) -> _Source:
    """What :func:`_batch_body` sends for ``data``: a path, checked now and opened when its turn comes (a
    batch holds no file open but the one being sent), or what :func:`_content` makes of anything else."""
    if isinstance(data, os.PathLike):
        _open_regular(Path(data)).close()
        return Path(data)
    return await _content(data)


def _length_of(source: _Source) -> int | None:
    """How many bytes ``source`` holds, if that is known before it is read."""
    if isinstance(source, Path):
        return source.stat().st_size
    return len(source) if isinstance(source, bytes) else None


async def _batch_body(
    items: builtins.list[tuple[dict[str, Any], _Source]],
) -> AsyncIterator[bytes]:
    """A batch put's body (blobstore.wire.BATCH_TYPE): the manifest line, then each item's bytes in chunks."""
    manifest = [fields for fields, _source in items]
    yield json.dumps({"items": manifest}, separators=(",", ":")).encode() + b"\n"
    for _fields, source in items:
        content = await _content(source) if isinstance(source, Path) else source
        async for chunk in _once(content) if isinstance(content, bytes) else content:
            if chunk:
                yield wire.batch_chunk_head(len(chunk))
                yield chunk
        yield wire.BATCH_ITEM_END


def _manifest_item(item: PutItem) -> dict[str, Any]:
    """An item's fields for the manifest, as the single PUT's headers carry them, checked here as
    :meth:`BlobClient.put` checks them (the server checks them again)."""
    validate_key(item.key)
    _put_headers(item.content_type, item.metadata)
    if item.digest is not None:
        validate_digest(item.digest)
    condition = expect(item.if_match, item.if_unmodified_since, if_absent=item.if_absent)
    validate_expires_in(item.expires_in)
    fields: dict[str, Any] = {
        "key": item.key,
        "content_type": item.content_type,
        "metadata": item.metadata,
        "digest": item.digest,
        "if_absent": item.if_absent,
        "if_match": None if condition.match is None else sorted(condition.match),
        "if_unmodified_since": None if condition.unmodified_since is None else condition.unmodified_since.isoformat(),
        "expires_in": item.expires_in,
    }
    return {name: value for name, value in fields.items() if value not in (None, False)}


async def _raise_for_problem(response: httpx.Response) -> None:
    """Raise the error a failed response names (its problem ``code``, else its status: a 503 without a code,
    such as the plain one of the server's connection bound, is StorageUnavailable; any other is BlobStoreError)."""
    if response.is_success or response.status_code == httpx.codes.NOT_MODIFIED:
        return
    await response.aread()
    code = response.headers.get(wire.ERROR_CODE, "")
    detail = f"HTTP {response.status_code}"
    with contextlib.suppress(ValueError):
        problem = response.json()
        code, detail = problem.get("code", code), problem.get("detail", detail)
    if not code and response.status_code == httpx.codes.SERVICE_UNAVAILABLE:
        code = StorageUnavailable.__name__
    raise ERRORS.get(code, BlobStoreError)(detail)


def _put_headers(content_type: object, metadata: object) -> dict[str, str]:
    headers = {}
    if content_type is not None:
        headers["content-type"] = validate_media_type(content_type)
    if metadata is not None:
        if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
        ):
            raise InvalidInput("metadata must be a dict of str to str")
        headers.update(wire.metadata_headers(metadata))
    return headers


def _condition_headers(condition: Precondition) -> dict[str, str]:
    """The request headers that ask the server for ``condition``."""
    headers = {}
    if condition.match is not None:
        tags = sorted(condition.match)  # none: an empty list, which no version matches
        headers["if-match"] = ANY if ANY in tags else ", ".join(wire.etag(digest) for digest in tags)
    if condition.unmodified_since is not None:
        headers["if-unmodified-since"] = format_datetime(condition.unmodified_since.astimezone(UTC), usegmt=True)
    if condition.absent:
        headers["if-none-match"] = ANY
    return headers


async def _content(data: object) -> bytes | AsyncIterable[bytes]:
    """What httpx sends for ``data``, streamed unless it is already bytes."""
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    if isinstance(data, str):
        raise InvalidInput("cannot store a str: pass bytes, or a pathlib.Path to store a file")
    if isinstance(data, os.PathLike):
        return _file_chunks(_open_regular(Path(data)))
    if hasattr(data, "read"):
        return _file_chunks(data, close=False)
    if isinstance(data, AsyncIterable):
        return _checked_chunks(data)
    raise InvalidInput(
        f"cannot store {type(data).__name__}: pass bytes, a path, a binary file or an async iterable of bytes"
    )


def _open_regular(path: Path) -> Any:
    try:
        file = path.open("rb")
    except FileNotFoundError:
        raise NotFound(f"no such file: {path}") from None
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None
    if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
        file.close()
        raise InvalidInput(f"{path} is not a regular file")
    return file


async def _file_chunks(file: Any, *, close: bool = True) -> AsyncIterator[bytes]:
    try:
        read = getattr(file, "read1", file.read)
        while chunk := await asyncio.to_thread(read, CHUNK_SIZE):
            yield chunk
    finally:
        if close:
            file.close()


async def _checked_chunks(chunks: AsyncIterable[object]) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        if not isinstance(chunk, bytes | bytearray | memoryview):
            raise InvalidInput(f"the input yielded {type(chunk).__name__}, expected bytes")
        yield bytes(chunk)


async def _verified(response: httpx.Response, key: str, expected: int, digest: str | None) -> AsyncIterator[bytes]:
    """The body's chunks; IntegrityError if it ends short or (whole reads) does not hash to ``digest``."""
    hasher = None if digest is None else new_hasher()
    received = 0
    try:
        async for chunk in response.aiter_raw():
            received += len(chunk)
            if hasher is not None:
                hasher.update(chunk)
            yield chunk
    except httpx.TransportError as exc:
        raise IntegrityError(
            f"the server ended {key!r} after {received} of {expected} bytes "
            "(damaged in storage, or the connection broke)"
        ) from exc
    if received != expected:
        raise IntegrityError(f"{key!r} arrived with {received} of {expected} bytes")
    if hasher is not None and hasher.hexdigest() != digest:
        raise IntegrityError(f"{key!r} arrived with bytes that do not hash to {digest}")


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _no_chunks() -> AsyncIterator[bytes]:
    return
    yield b""
