"""Object operations: PutObject, CopyObject, GetObject (whole or one range), HeadObject, DeleteObject,
DeleteObjects, GetObjectAcl.

Object ``KEY`` of bucket ``B`` is the tenant's native key ``B/KEY`` (blobstore.buckets.key_of): the same
object through both APIs. The ETag of a PUT is the MD5 of its bytes, computed as they stream in.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from email.utils import format_datetime
from urllib.parse import unquote

from starlette.responses import Response

from blobstore import buckets, multipart
from blobstore.accounting.quotas import Allowance
from blobstore.asgi.responses import ClosingStreamingResponse, verified_body
from blobstore.errors import BlobStoreError
from blobstore.model.keys import STORED_HEADERS
from blobstore.model.preconditions import parse_http_date
from blobstore.model.ranges import ByteRange, parse_range
from blobstore.model.results import BlobInfo
from blobstore.model.s3_facts import S3Facts
from blobstore.s3 import checksums, xml
from blobstore.s3.buckets import existing
from blobstore.s3.call import Call, header_text, header_value
from blobstore.s3.errors import S3Error, not_implemented, translate
from blobstore.s3.router import RESPONSE_OVERRIDES, checked_key
from blobstore.store import MAX_BATCH

META_PREFIX = "x-amz-meta-"
#: Content codings that frame a request's body (blobstore.s3.chunked), never an object's.
_FRAMING = {"aws-chunked"}
#: What S3 answers as the type of an object stored without one.
DEFAULT_CONTENT_TYPE = "binary/octet-stream"
#: The response header carrying the BLAKE3 digest, blobstore's identity of the bytes.
DIGEST_HEADER = "x-blobstore-digest"
#: The prefix of CopyObject's conditions on its source, and those conditions.
_COPY_SOURCE = "x-amz-copy-source-"
_COPY_CONDITIONS = [
    _COPY_SOURCE + name for name in ("if-match", "if-none-match", "if-modified-since", "if-unmodified-since")
]


async def put_object(call: Call) -> Response:
    """PutObject: stream the body into the store (dedup as any put); answer its MD5 ETag, and the
    ``x-amz-checksum-*`` it was verified against, if any (both recorded, for ``x-amz-checksum-mode``, in the
    transaction that binds the key).

    ``If-None-Match: *`` (the key must not exist) and ``If-Match`` (the key must hold the version of that ETag;
    NoSuchKey if there is none) are checked where the store binds the key: 412 PreconditionFailed, nothing
    stored. Any other If-None-Match is 501, as S3 answers.
    """
    bucket = existing(call)
    key = buckets.key_of(bucket, call.key)
    if_none_match, if_match = call.headers.get("if-none-match"), call.headers.get("if-match")
    if if_none_match is not None and if_none_match.strip() != "*":
        raise not_implemented("If-None-Match other than * on PutObject")
    if if_none_match is not None and await call.tenant.exists(key):  # refused before the body, as S3 does
        raise precondition_failed()
    expected = None
    if if_match is not None:
        current = await call.tenant.stat(key)
        if not tag_matches(if_match, await etag_of(call, current)):
            raise precondition_failed()
        expected = current.digest
    allowance = await call.tenant.allowance(key, if_absent=if_none_match is not None, quota_set=call.quota_set)
    allowance.check(_declared_length(call))  # 403 QuotaExceeded from the headers alone, before a byte of the body
    await call.tenant.put_with_headers(
        key,
        _within(call.body, allowance),
        headers=stored_headers_of(call),
        content_type=call.headers.get("content-type"),
        metadata=metadata_of(call),
        if_absent=if_none_match is not None,
        if_match=expected,
        s3_facts=call.body.facts,
    )
    if call.body.checksum is None:
        return Response(headers={"ETag": call.body.etag})
    name, value = call.body.checksum
    return Response(headers={"ETag": call.body.etag, name: value, "x-amz-checksum-type": "FULL_OBJECT"})


def _declared_length(call: Call) -> int:
    """The length of the object the request says it sends (an aws-chunked body's decoded length); 0 if unsaid."""
    declared = call.headers.get("x-amz-decoded-content-length") or call.headers.get("content-length") or "0"
    if not declared.isdigit():
        raise S3Error("InvalidArgument", "Content-Length and x-amz-decoded-content-length must be integers")
    return int(declared)


async def _within(body: AsyncIterable[bytes], allowance: Allowance) -> AsyncIterator[bytes]:
    """``body``, stopped at the first chunk that takes it past what ``allowance`` lets the put store."""
    received = 0
    async for chunk in body:
        received += len(chunk)
        allowance.check(received)
        yield chunk


async def copy_object(call: Call) -> Response:
    """CopyObject: a new reference to the source's bytes, across the tenant's buckets; no bytes move.

    ``x-amz-metadata-directive`` COPY (the default) keeps the source's type, metadata and stored headers;
    REPLACE takes the request's. The source is read with the caller's tenant: another tenant's bucket is
    NoSuchBucket. The ``x-amz-copy-source-if-*`` headers are evaluated on the source as GET's are on an object,
    except that every unmet one is 412 PreconditionFailed.
    """
    if "read" not in call.scopes:
        raise S3Error("AccessDenied", "this access key lacks the 'read' scope a copy's source needs")
    bucket = existing(call)
    source_bucket, source_key = copy_source(call.headers["x-amz-copy-source"])
    if await buckets.find(call.store.core, call.tenant.name, source_bucket) is None:
        raise S3Error("NoSuchBucket", "the specified bucket does not exist")
    source = buckets.key_of(source_bucket, source_key)
    target = buckets.key_of(bucket, call.key)
    if any(name in call.headers for name in _COPY_CONDITIONS):
        current = await call.tenant.stat(source)
        if copy_source_unmet(call, current, await etag_of(call, current)):
            raise precondition_failed()
    directive = call.headers.get("x-amz-metadata-directive", "COPY").upper()
    if directive == "COPY" and source == target:
        raise S3Error(
            "InvalidRequest",
            "This copy request is illegal because it is trying to copy an object to itself without changing the "
            "object's metadata (x-amz-metadata-directive: REPLACE)",
        )
    if directive == "COPY":
        info = await call.tenant.copy(source, target)
    elif directive == "REPLACE":
        digest = (await call.tenant.stat(source)).digest
        info = await call.tenant.put_with_headers(
            target,
            digest=digest,
            headers=stored_headers_of(call),
            content_type=call.headers.get("content-type"),
            metadata=metadata_of(call),
        )
    else:
        raise S3Error("InvalidArgument", "x-amz-metadata-directive must be COPY or REPLACE")
    etags = await buckets.etags(call.store.core, call.tenant.name, [info.digest])
    return Response(xml.copy_result(etags[info.digest], info.created_at), media_type=xml.CONTENT_TYPE)


def copy_source(header: str) -> tuple[str, str]:
    """(bucket, key) of an ``x-amz-copy-source`` header: ``[/]BUCKET/KEY``, percent-encoded, no version; the key
    at most 1,024 bytes (KeyTooLongError)."""
    path, _, query = header.partition("?")
    bucket, _, key = unquote(path).removeprefix("/").partition("/")
    if query and query != "versionId=null":
        raise not_implemented("copying a version other than null")
    if not bucket or not key:
        raise S3Error("InvalidArgument", "x-amz-copy-source must be BUCKET/KEY")
    return bucket, checked_key(key)


def metadata_of(call: Call) -> dict[str, str]:
    """The request's ``x-amz-meta-*`` headers, by name without the prefix, their values read as signed
    (blobstore.s3.call.header_text: UTF-8 when they are)."""
    return {
        name[len(META_PREFIX) :]: header_text(value.encode("latin-1"))
        for name, value in call.headers.items()
        if name.startswith(META_PREFIX)
    }


def stored_headers_of(call: Call) -> dict[str, str]:
    """The request's headers an object stores (blobstore.model.keys.STORED_HEADERS), values read as signed; the
    ``aws-chunked`` of a Content-Encoding is the request's framing, not the object's, and is left out."""
    headers = {
        name: header_text(value.encode("latin-1")) for name, value in call.headers.items() if name in STORED_HEADERS
    }
    if "content-encoding" in headers:
        codings = [c.strip() for c in headers.pop("content-encoding").split(",") if c.strip() not in _FRAMING]
        if codings:
            headers["content-encoding"] = ", ".join(codings)
    return headers


def _answered_headers(call: Call, info: BlobInfo) -> dict[str, str]:
    """The stored response headers of ``info``, each replaced by its ``response-*`` query parameter if the
    GET or HEAD has one (S3's overrides, Content-Type's included)."""
    headers = {name.title(): header_value(value) for name, value in info.headers.items()}
    for parameter in RESPONSE_OVERRIDES & call.params.keys():
        headers[parameter.removeprefix("response-").title()] = header_value(call.params[parameter])
    return headers


async def head_object(call: Call) -> Response:
    """HeadObject: the object's headers, no body (304 or 412 under the conditional headers, as GET); with
    ``partNumber``, those of that part as GET answers it."""
    bucket = existing(call)
    info = await call.tenant.stat(buckets.key_of(bucket, call.key))
    part = None if "partNumber" not in call.params else await _part_of(call, info)
    ranged = part is not None and part.byte_range is not None
    headers = await _headers(call, info, whole=not ranged) | _answered_headers(call, info)
    status = 200
    if part is not None and part.byte_range is not None:
        headers |= part.headers | _range_headers(part.byte_range, info.size)
        status = 206
    return _unmet(call, info, headers["ETag"]) or Response(status_code=status, headers=headers)


async def get_object(call: Call) -> Response:
    """GetObject: the whole object, streamed and verified against its digest as it goes (a failure within its
    first two chunks is an error answer, blobstore.asgi.responses.verified_body); or the one range a
    ``Range`` header asks for (206 with ``Content-Range``; 416 InvalidRange if the object has no byte of it;
    several ranges or bad syntax: the whole object, as S3 answers); or part ``partNumber`` of it (206, see
    :func:`_part_of`)."""
    key = buckets.key_of(existing(call), call.key)
    wanted = parse_range(call.headers.get("range"))
    requested = None if wanted is None else wanted.open_range()
    part = None
    if "partNumber" in call.params:
        if wanted is not None:
            raise S3Error("InvalidRequest", "Cannot specify both Range header and partNumber query parameter")
        part = await _part_of(call, await call.tenant.stat(key))
        requested = part.byte_range
    elif wanted is not None and requested is None:  # the last n bytes: the size is needed first
        requested = wanted.resolve((await call.tenant.stat(key)).size)
    stack = AsyncExitStack()
    try:
        stream = await stack.enter_async_context(call.tenant.open(key, byte_range=requested))
        headers = await _headers(call, stream.info, whole=requested is None) | _answered_headers(call, stream.info)
        unmet = _unmet(call, stream.info, headers["ETag"])
        if unmet is not None:
            await stack.aclose()
            return unmet
        status = 200
        if requested is not None:
            headers |= _range_headers(ByteRange(*requested).resolve(stream.info.size), stream.info.size)
            status = 206
        if part is not None:
            headers |= part.headers
        body = await verified_body(stream, stack)
        if isinstance(body, bytes):  # read and verified whole: the read is over before the answer starts
            await stack.aclose()
            return Response(body, status_code=status, headers=headers)
    except BaseException:
        await stack.aclose()
        raise
    return ClosingStreamingResponse(body, stack, status_code=status, headers=headers)


def _range_headers(byte_range: tuple[int, int], size: int) -> dict[str, str]:
    """Content-Length and Content-Range of the bytes ``byte_range`` (inclusive, within the object) of ``size``."""
    first, last = byte_range
    return {"Content-Length": str(last - first + 1), "Content-Range": f"bytes {first}-{last}/{size}"}


@dataclass(frozen=True)
class _Part:
    """Part ``partNumber`` of an object: its bytes (None: all of an empty object) and the headers saying so."""

    byte_range: tuple[int, int] | None
    headers: dict[str, str]


async def _part_of(call: Call, info: BlobInfo) -> _Part:
    """Part ``partNumber`` of the object ``info``: of the parts its multipart upload was completed from (with
    ``x-amz-mp-parts-count``), or of the one part a single PUT is; 416 InvalidPartNumber past its parts."""
    number = part_number(call)
    sizes = await buckets.part_sizes(call.store.core, call.tenant.name, info.digest)
    headers = {} if sizes is None else {"x-amz-mp-parts-count": str(len(sizes))}
    sizes = sizes or [info.size]
    if number > len(sizes):
        raise S3Error("InvalidPartNumber", f"The requested partnumber is not satisfiable: the object has {len(sizes)}")
    first = sum(sizes[: number - 1])
    return _Part(None if info.size == 0 else (first, first + sizes[number - 1] - 1), headers)


def part_number(call: Call) -> int:
    """The request's ``partNumber``: 1 to 10,000, else InvalidArgument."""
    text = call.params["partNumber"]
    number = int(text) if text.isascii() and text.isdigit() and len(text) <= 5 else 0
    if not 1 <= number <= multipart.MAX_PART_NUMBER:
        raise S3Error("InvalidArgument", f"Part number must be an integer between 1 and {multipart.MAX_PART_NUMBER}")
    return number


def _unmet(call: Call, info: BlobInfo, etag: str) -> Response | None:
    """The answer when a conditional header of a GET or HEAD is not met: 412 PreconditionFailed (raised) or
    304; None when all are."""
    unmet = _unmet_condition(call.headers, "", info, etag)
    if unmet == 412:
        raise precondition_failed()
    if unmet == 304:
        modified = info.created_at.replace(microsecond=0)
        return Response(
            status_code=304, headers={"ETag": etag, "Last-Modified": format_datetime(modified, usegmt=True)}
        )
    return None


def copy_source_unmet(call: Call, source: BlobInfo, etag: str) -> bool:
    """True if the source ``source`` (of S3 ETag ``etag``) fails an ``x-amz-copy-source-if-*`` condition of the
    request (CopyObject, UploadPartCopy): S3 answers 412 for any of them."""
    return _unmet_condition(call.headers, _COPY_SOURCE, source, etag) is not None


def _unmet_condition(headers: Mapping[str, str], prefix: str, info: BlobInfo, etag: str) -> int | None:
    """Which of the conditional headers ``{prefix}if-match`` and friends the version ``info`` (of S3 ETag
    ``etag``) does not meet, by S3's rules: 412 for If-Match (taking precedence over If-Unmodified-Since), 304
    for If-None-Match (over If-Modified-Since); None when all are met. Dates compare to the second."""
    modified = info.created_at.replace(microsecond=0)
    if_match, if_none_match = headers.get(prefix + "if-match"), headers.get(prefix + "if-none-match")
    if if_match is not None:
        if not tag_matches(if_match, etag):
            return 412
    elif (since := parse_http_date(headers.get(prefix + "if-unmodified-since"))) is not None and modified > since:
        return 412
    if if_none_match is not None:
        unchanged = tag_matches(if_none_match, etag)
    else:
        since = parse_http_date(headers.get(prefix + "if-modified-since"))
        unchanged = since is not None and modified <= since
    return 304 if unchanged else None


def precondition_failed() -> S3Error:
    """The 412 of a condition not met (PutObject, CopyObject, UploadPartCopy, CompleteMultipartUpload)."""
    return S3Error("PreconditionFailed", "At least one of the pre-conditions you specified did not hold")


def tag_matches(header: str, etag: str) -> bool:
    """True if the If-Match / If-None-Match ``header`` (a list of ETags, weak or not, or ``*``) names ``etag``."""
    tags = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return "*" in tags or etag in tags or etag.strip('"') in tags


async def delete_object(call: Call) -> Response:
    """DeleteObject: 204 whether or not the key existed, as S3 answers."""
    bucket = existing(call)
    await call.tenant.delete(buckets.key_of(bucket, call.key))
    return Response(status_code=204)


async def get_object_acl(call: Call) -> Response:
    """GetObjectAcl: always private, the tenant's alone."""
    bucket = existing(call)
    await call.tenant.stat(buckets.key_of(bucket, call.key))
    return Response(xml.private_acl(call.tenant.name), media_type=xml.CONTENT_TYPE)


async def delete_objects(call: Call) -> Response:
    """DeleteObjects: up to 1,000 keys in one transaction; each deleted or not there is reported ``Deleted``
    (only errors with ``Quiet``). A version other than ``null`` (this API keeps none) is an error entry."""
    bucket = existing(call)
    objects, quiet = xml.parse_delete(await call.body.whole())
    if len(objects) > MAX_BATCH:
        raise S3Error("MalformedXML", f"a DeleteObjects request names at most {MAX_BATCH} keys")
    errors = [
        (key, "NoSuchVersion", "this bucket keeps no versions")
        for key, version in objects
        if version not in (None, "null")
    ]
    wanted = [key for key, version in objects if version in (None, "null")]
    unique = list(dict.fromkeys(wanted))
    outcomes = await call.tenant.delete_many([buckets.key_of(bucket, key) for key in unique])
    deleted = []
    for key, outcome in zip(unique, outcomes, strict=True):
        if isinstance(outcome, BlobStoreError):
            error = translate(outcome)
            errors.append((key, error.code, error.message))
        else:
            deleted.append(key)
    body = xml.delete_result([] if quiet else deleted, errors)
    return Response(body, media_type=xml.CONTENT_TYPE)


async def etag_of(call: Call, info: BlobInfo) -> str:
    """The S3 ETag of the caller's object ``info`` (read with the request's access key when it can be)."""
    return buckets.etag(info.digest, (await _facts(call, info)).md5)


async def _facts(call: Call, info: BlobInfo) -> S3Facts:
    """The S3 facts of the caller's object ``info``: those read with the request's access key when ``info`` is the
    version they were read for (blobstore.s3.call.Call.facts_of), else one lookup."""
    known = call.facts_of(info)
    return known if known is not None else await buckets.facts(call.store.core, call.tenant.name, info.digest)


async def _headers(call: Call, info: BlobInfo, *, whole: bool) -> dict[str, str]:
    """The object's headers, its S3 facts read in one lookup; with the checksums recorded for its bytes when the
    request asks (``x-amz-checksum-mode: ENABLED``) for the ``whole`` object, as S3 answers. A multipart
    upload's COMPOSITE checksum (``<base64>-N``) says so in ``x-amz-checksum-type``."""
    facts = await _facts(call, info)
    headers = {
        "Content-Length": str(info.size),
        "Content-Type": info.content_type or DEFAULT_CONTENT_TYPE,
        "ETag": buckets.etag(info.digest, facts.md5),
        "Last-Modified": format_datetime(info.created_at, usegmt=True),
        "Accept-Ranges": "bytes",
        DIGEST_HEADER: info.digest,
        **{META_PREFIX + name: header_value(value) for name, value in info.metadata.items()},
    }
    if whole and facts.checksums and call.headers.get("x-amz-checksum-mode", "").upper() == "ENABLED":
        headers |= {checksums.PREFIX + algorithm: value for algorithm, value in facts.checksums.items()}
        composite = any("-" in value for value in facts.checksums.values())
        headers["x-amz-checksum-type"] = "COMPOSITE" if composite else "FULL_OBJECT"
    return headers
