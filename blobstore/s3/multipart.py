"""Multipart upload operations: CreateMultipartUpload, UploadPart, UploadPartCopy, CompleteMultipartUpload,
AbortMultipartUpload, ListParts, ListMultipartUploads, over blobstore.multipart.

An upload id of another tenant answers exactly as one that does not exist (``NoSuchUpload``), as does one of
another key or bucket of the tenant's.
"""

from __future__ import annotations

import re
from contextlib import AsyncExitStack
from urllib.parse import quote

from starlette.responses import Response

from blobstore import buckets, multipart
from blobstore.s3 import checksums, xml
from blobstore.s3.buckets import existing
from blobstore.s3.call import Call
from blobstore.s3.errors import S3Error, not_implemented
from blobstore.s3.objects import (
    copy_source,
    copy_source_unmet,
    etag_of,
    metadata_of,
    part_number,
    precondition_failed,
    stored_headers_of,
    tag_matches,
)

#: Most parts (ListParts) and uploads (ListMultipartUploads) one page shows.
MAX_PAGE = 1000
_COPY_RANGE = re.compile(r"bytes=(\d+)-(\d+)")


async def create_multipart_upload(call: Call) -> Response:
    """CreateMultipartUpload: begin an upload; its Content-Type, x-amz-meta-* and stored headers (Cache-Control,
    Content-Disposition, ...: blobstore.s3.objects.stored_headers_of) become the object's. With
    ``x-amz-checksum-algorithm`` every part's checksum of it is recorded, and the object's COMPOSITE one
    (``x-amz-checksum-type: FULL_OBJECT`` answers 501)."""
    bucket = existing(call)
    algorithm = call.headers.get("x-amz-checksum-algorithm")
    if call.headers.get("x-amz-checksum-type", "COMPOSITE").upper() != "COMPOSITE":
        raise not_implemented("multipart uploads with a FULL_OBJECT checksum")
    upload = await multipart.create(
        call.store.core,
        call.tenant.name,
        bucket,
        call.key,
        content_type=call.headers.get("content-type"),
        metadata=metadata_of(call),
        headers=stored_headers_of(call),
        checksum_algorithm=None if algorithm is None else algorithm.strip().lower(),
    )
    headers = {}
    if upload.checksum_algorithm is not None:
        headers = {"x-amz-checksum-algorithm": upload.checksum_algorithm.upper(), "x-amz-checksum-type": "COMPOSITE"}
    body = xml.initiate_multipart_upload(bucket, call.key, upload.id)
    return Response(body, media_type=xml.CONTENT_TYPE, headers=headers)


async def upload_part(call: Call) -> Response:
    """UploadPart: stage the body as part ``partNumber``; answer its MD5 ETag, the ``x-amz-checksum-*`` it was
    verified against (blobstore.s3.payload: BadDigest, nothing staged, if it does not match) and its checksum of
    the upload's algorithm."""
    bucket = existing(call)
    part = await multipart.upload_part(
        call.store.core,
        call.tenant.name,
        bucket,
        call.key,
        call.params["uploadId"],
        part_number(call),
        call.body,
        hashed=call.body,
    )
    headers = {"ETag": part.etag}
    if call.body.checksum is not None:
        headers[call.body.checksum[0]] = call.body.checksum[1]
    if part.checksum is not None:
        headers[checksums.PREFIX + part.checksum[0]] = part.checksum[1]
    return Response(headers=headers)


async def upload_part_copy(call: Call) -> Response:
    """UploadPartCopy: stage the tenant's object ``x-amz-copy-source`` (or the ``x-amz-copy-source-range`` of it,
    ``bytes=FIRST-LAST``, 416 InvalidRange unless the source holds every byte of it) as part ``partNumber``; the
    source is read, verified, as GetObject reads it. The ``x-amz-copy-source-if-*`` conditions are judged on the
    source as CopyObject judges them (412)."""
    if "read" not in call.scopes:
        raise S3Error("AccessDenied", "this access key lacks the 'read' scope a copy's source needs")
    bucket = existing(call)
    number = part_number(call)
    source_bucket, source_key = copy_source(call.headers["x-amz-copy-source"])
    if await buckets.find(call.store.core, call.tenant.name, source_bucket) is None:
        raise S3Error("NoSuchBucket", "the specified bucket does not exist")
    await call.body.whole()
    wanted = _copy_range(call)
    async with AsyncExitStack() as stack:
        source = await stack.enter_async_context(
            call.tenant.open(buckets.key_of(source_bucket, source_key), byte_range=wanted)
        )
        if wanted is not None and wanted[1] >= source.info.size:
            raise S3Error("InvalidRange", f"the copy source range ends past the source's {source.info.size} bytes")
        if copy_source_unmet(call, source.info, await etag_of(call, source.info)):
            raise precondition_failed()
        part = await multipart.upload_part(
            call.store.core, call.tenant.name, bucket, call.key, call.params["uploadId"], number, source
        )
    return Response(
        xml.copy_result(part.etag, part.last_modified, root_name="CopyPartResult", checksum=part.checksum),
        media_type=xml.CONTENT_TYPE,
    )


async def complete_multipart_upload(call: Call) -> Response:
    """CompleteMultipartUpload: the listed parts become the object. ``If-None-Match: *`` stores it only where
    there is none; ``If-Match`` only over the object of that ETag (412 PreconditionFailed otherwise). A retry of
    a completion that succeeded answers the same result while the key holds its object (blobstore.multipart.
    completed), its conditions, met then, not judged again. An ``x-amz-checksum-*`` header is the checksum the
    object must get: BadDigest, nothing completed, unless it is the COMPOSITE one the upload's parts make."""
    bucket = existing(call)
    completion = xml.parse_complete_multipart_upload(await call.body.whole())
    listed = completion.parts
    if_none_match = call.headers.get("if-none-match")
    if if_none_match is not None and if_none_match.strip() != "*":
        raise not_implemented("If-None-Match other than *")
    if_match = call.headers.get("if-match")
    upload_id = call.params["uploadId"]
    digest = None
    if if_match is not None and not await multipart.completed(
        call.store.core, call.tenant.name, bucket, call.key, upload_id, listed
    ):
        digest = await _digest_matching(call, bucket, if_match)
    completed = await multipart.complete(
        call.store.core,
        call.tenant.name,
        bucket,
        call.key,
        upload_id,
        listed,
        if_absent=if_none_match is not None,
        if_match=digest,
        listed_checksums=completion.checksums,
        expected_checksum=_object_checksum(call),
    )
    location = f"/{quote(bucket)}/{quote(call.key)}"
    body = xml.complete_multipart_upload(location, bucket, call.key, completed.etag, completed.checksum)
    return Response(body, media_type=xml.CONTENT_TYPE)


async def abort_multipart_upload(call: Call) -> Response:
    """AbortMultipartUpload: the upload and its parts are gone (their bytes no longer count to the quota)."""
    bucket = existing(call)
    await multipart.abort(call.store.core, call.tenant.name, bucket, call.key, call.params["uploadId"])
    return Response(status_code=204)


async def list_parts(call: Call) -> Response:
    """ListParts: the upload's parts by number, paged by ``part-number-marker`` and ``max-parts``."""
    bucket = existing(call)
    marker = _count(call, "part-number-marker", 0)
    limit = min(_count(call, "max-parts", MAX_PAGE), MAX_PAGE)
    upload, parts, truncated = await multipart.list_parts(
        call.store.core, call.tenant.name, bucket, call.key, call.params["uploadId"], after=marker, limit=limit
    )
    page = xml.PartsPage(
        bucket,
        upload.key,
        upload.id,
        call.tenant.name,
        marker,
        limit,
        [
            (part.number, part.last_modified, part.etag, part.size, None if part.checksum is None else part.checksum[1])
            for part in parts
        ],
        truncated,
        upload.checksum_algorithm,
    )
    return Response(xml.list_parts(page), media_type=xml.CONTENT_TYPE)


async def list_multipart_uploads(call: Call) -> Response:
    """ListMultipartUploads: the tenant's uploads in the bucket, by key then upload id, with ``prefix``, paged by
    ``key-marker`` / ``upload-id-marker`` and ``max-uploads``."""
    bucket = existing(call)
    prefix = call.params.get("prefix", "")
    key_marker = call.params.get("key-marker", "")
    upload_id_marker = call.params.get("upload-id-marker", "")
    limit = min(_count(call, "max-uploads", MAX_PAGE), MAX_PAGE)
    # Without an upload-id-marker S3 starts after every upload of key-marker itself.
    after = (key_marker, upload_id_marker or None) if key_marker else None
    uploads, truncated = await multipart.list_uploads(
        call.store.core, call.tenant.name, bucket, prefix=prefix, after=after, limit=limit
    )
    page = xml.UploadsPage(
        bucket,
        call.tenant.name,
        prefix,
        key_marker,
        upload_id_marker,
        limit,
        [(upload.key, upload.id, upload.created_at) for upload in uploads],
        truncated,
    )
    return Response(xml.list_multipart_uploads(page), media_type=xml.CONTENT_TYPE)


def _object_checksum(call: Call) -> tuple[str, str] | None:
    """(algorithm, value) of the ``x-amz-checksum-*`` header of a CompleteMultipartUpload: the checksum the
    client expects the object to have (COMPOSITE: ``<base64>-N``); InvalidRequest for several."""
    sent = [name for name in sorted(checksums.NAMES) if name in call.headers]
    if len(sent) > 1:
        raise S3Error("InvalidRequest", "expecting a single x-amz-checksum- header; multiple checksum types")
    return (sent[0].removeprefix(checksums.PREFIX), call.headers[sent[0]].strip()) if sent else None


def _count(call: Call, name: str, default: int) -> int:
    text = call.params.get(name)
    if text is None:
        return default
    if not (text.isascii() and text.isdigit() and len(text) <= 9):
        raise S3Error("InvalidArgument", f"{name} must be a non-negative integer")
    return int(text)


def _copy_range(call: Call) -> tuple[int, int] | None:
    header = call.headers.get("x-amz-copy-source-range")
    if header is None:
        return None
    matched = _COPY_RANGE.fullmatch(header.strip())
    if matched is None or int(matched[1]) > int(matched[2]):
        raise S3Error("InvalidArgument", "x-amz-copy-source-range must be bytes=FIRST-LAST")
    return int(matched[1]), int(matched[2])


async def _digest_matching(call: Call, bucket: str, if_match: str) -> str:
    """The digest of the object at the request's key if its ETag is one ``If-Match`` names; PreconditionFailed
    if it is another, NoSuchKey if there is none."""
    current = await call.tenant.stat(buckets.key_of(bucket, call.key))
    if not tag_matches(if_match, await etag_of(call, current)):
        raise precondition_failed()
    return current.digest
