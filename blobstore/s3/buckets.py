"""Bucket operations: ListBuckets, CreateBucket, HeadBucket, DeleteBucket, GetBucketLocation, GetBucketVersioning,
GetBucketAcl, ListObjects (v1), ListObjectsV2 and ListObjectVersions (every object as version ``null``).

Another tenant's bucket answers exactly as a bucket that does not exist (``NoSuchBucket``).
"""

from __future__ import annotations

import base64
import binascii

from starlette.responses import Response

from blobstore import buckets
from blobstore.errors import InvalidInput
from blobstore.model.keys import validate_bucket
from blobstore.model.results import BlobInfo
from blobstore.s3 import xml
from blobstore.s3.call import Call
from blobstore.s3.errors import S3Error

MAX_KEYS = 1000
#: The most buckets one ListBuckets answer holds (and the most a tenant may ask for).
MAX_BUCKETS = 10_000
#: The highest code point: ``PREFIX + _LAST_CHARACTER`` sorts after every key that starts with PREFIX.
_LAST_CHARACTER = "\U0010ffff"


def existing(call: Call) -> str:
    """The request's bucket if the caller's tenant owned it when the request was authenticated (read with the
    access key: no statement of its own); NoSuchBucket otherwise (whoever else may own it)."""
    if call.bucket_created_at is None:
        raise S3Error("NoSuchBucket", "the specified bucket does not exist")
    return call.bucket


async def list_buckets(call: Call) -> Response:
    """ListBuckets: the caller's buckets only, by name; those starting with ``prefix``, ``max-buckets`` (1-10,000)
    at a time after a ``continuation-token`` (the name of the last bucket of the page before)."""
    prefix = call.params.get("prefix", "")
    most = call.params.get("max-buckets", str(MAX_BUCKETS))
    if not most.isdigit() or not 1 <= int(most) <= MAX_BUCKETS:
        raise S3Error("InvalidArgument", f"max-buckets must be 1 to {MAX_BUCKETS}")
    token = call.params.get("continuation-token")
    after = _decode_token(token) if token is not None else None
    found = [
        (bucket.name, bucket.created_at)
        for bucket in await buckets.list_buckets(call.store.core, call.tenant.name)
        if bucket.name.startswith(prefix) and (after is None or bucket.name > after)
    ]
    page = found[: int(most)]
    more = _encode_token(page[-1][0]) if len(found) > len(page) else None
    body = xml.list_buckets(call.tenant.name, page, prefix=prefix or None, continuation_token=more)
    return Response(body, media_type=xml.CONTENT_TYPE)


async def create_bucket(call: Call) -> Response:
    """CreateBucket: BucketAlreadyOwnedByYou if the tenant has it (another tenant's of the same name is no obstacle);
    InvalidBucketName for a name S3's rules refuse."""
    try:
        validate_bucket(call.bucket)
    except InvalidInput as error:
        raise S3Error("InvalidBucketName", str(error)) from None
    await call.body.whole()
    if not await buckets.create(call.store.core, call.tenant.name, call.bucket):
        raise S3Error("BucketAlreadyOwnedByYou", "your previous request to create the named bucket succeeded")
    return Response(headers={"Location": f"/{call.bucket}"})


async def head_bucket(call: Call) -> Response:
    """HeadBucket: 200 if the caller owns the bucket."""
    existing(call)
    return Response(headers={"x-amz-bucket-region": call.region})


async def delete_bucket(call: Call) -> Response:
    """DeleteBucket: only an empty bucket (BucketNotEmpty otherwise)."""
    outcome = await buckets.delete(call.store.core, call.tenant.name, call.bucket)
    if outcome is buckets.Deletion.MISSING:
        raise S3Error("NoSuchBucket", "the specified bucket does not exist")
    if outcome is buckets.Deletion.NOT_EMPTY:
        raise S3Error("BucketNotEmpty", "the bucket you tried to delete is not empty")
    return Response(status_code=204)


async def get_bucket_location(call: Call) -> Response:
    """GetBucketLocation: this server's region."""
    existing(call)
    return Response(xml.location(call.region), media_type=xml.CONTENT_TYPE)


async def get_bucket_versioning(call: Call) -> Response:
    """GetBucketVersioning: never enabled (this API keeps no versions)."""
    existing(call)
    return Response(xml.versioning(), media_type=xml.CONTENT_TYPE)


async def get_bucket_acl(call: Call) -> Response:
    """GetBucketAcl: always private, the tenant's alone (``x-amz-acl`` on a request is accepted and changes nothing)."""
    existing(call)
    return Response(xml.private_acl(call.tenant.name), media_type=xml.CONTENT_TYPE)


async def list_objects_v2(call: Call) -> Response:
    """ListObjectsV2: prefix, delimiter (CommonPrefixes), max-keys, continuation-token, start-after, encoding-type."""
    token, start_after = call.params.get("continuation-token"), call.params.get("start-after")
    after = _decode_token(token) if token is not None else start_after or None
    listing, cursor = await _page(call, after, with_owner=call.params.get("fetch-owner") == "true")
    next_token = _encode_token(cursor) if listing.truncated and cursor is not None else None
    body = xml.list_objects_v2(listing, continuation_token=token, next_token=next_token, start_after=start_after)
    return Response(body, media_type=xml.CONTENT_TYPE)


async def list_objects(call: Call) -> Response:
    """ListObjects (v1): prefix, delimiter (CommonPrefixes), max-keys, marker, encoding-type."""
    marker = call.params.get("marker", "")
    listing, cursor = await _page(call, _resumed_after(call, marker) if marker else None, with_owner=True)
    next_marker = cursor.removesuffix(_LAST_CHARACTER) if listing.truncated and cursor is not None else None
    return Response(xml.list_objects_v1(listing, marker=marker, next_marker=next_marker), media_type=xml.CONTENT_TYPE)


def _resumed_after(call: Call, marker: str) -> str:
    """Where a listing after ``marker`` resumes: past every key under it when it is one of this listing's common
    prefixes (the NextMarker of a page that ended on one), else right after it."""
    prefix, delimiter = call.params.get("prefix", ""), call.params.get("delimiter")
    if delimiter and marker.startswith(prefix) and marker.find(delimiter, len(prefix)) == len(marker) - len(delimiter):
        return marker + _LAST_CHARACTER
    return marker


async def list_object_versions(call: Call) -> Response:
    """ListObjectVersions of a bucket that never had versioning: every object once, version ``null``, paged by
    ``key-marker`` (each key has one version, so the listing goes on after it)."""
    marker = call.params.get("key-marker", "")
    listing, cursor = await _page(call, marker or None, with_owner=True)
    next_marker = cursor if listing.truncated else None
    body = xml.list_object_versions(listing, key_marker=marker, next_key_marker=next_marker)
    return Response(body, media_type=xml.CONTENT_TYPE)


async def _page(call: Call, after: str | None, *, with_owner: bool) -> tuple[xml.Listing, str | None]:
    """The page of the request's bucket listing after ``after`` (each object ``with_owner``: the tenant), and the
    cursor to continue from."""
    bucket = existing(call)
    encoding = call.params.get("encoding-type")
    if encoding not in (None, "url"):
        raise S3Error("InvalidArgument", "encoding-type must be url")
    prefix, delimiter = call.params.get("prefix", ""), call.params.get("delimiter") or None
    max_keys = _max_keys(call.params.get("max-keys", str(MAX_KEYS)))
    objects, common, cursor = await _listing(call, f"{bucket}/", prefix, delimiter, after, max_keys)
    etags = await buckets.etags(call.store.core, call.tenant.name, [info.digest for _, info in objects])
    listing = xml.Listing(
        bucket=bucket,
        prefix=prefix,
        delimiter=delimiter,
        max_keys=max_keys,
        objects=[(key, info, etags[info.digest]) for key, info in objects],
        common_prefixes=common,
        truncated=cursor is not None,
        url_encoded=encoding == "url",
        owner=call.tenant.name if with_owner else None,
    )
    return listing, cursor


async def _listing(
    call: Call, root: str, prefix: str, delimiter: str | None, after: str | None, max_keys: int
) -> tuple[list[tuple[str, BlobInfo]], list[str], str | None]:
    """Up to ``max_keys`` objects and common prefixes of the bucket whose native keys start with ``root``, after
    ``after``; and the cursor to continue from if more remain (else None)."""
    objects: list[tuple[str, BlobInfo]] = []
    common: list[str] = []
    cursor = after
    while True:
        page = await call.tenant.list(root + prefix, limit=MAX_KEYS, after=None if cursor is None else root + cursor)
        skipped = False
        for info in page.items:
            if len(objects) + len(common) == max_keys:
                return objects, common, cursor
            key = info.key[len(root) :]
            cut = -1 if delimiter is None else key.find(delimiter, len(prefix))
            if cut >= 0:  # every key under this common prefix is skipped: list again past it
                common.append(key[: cut + len(delimiter or "")])
                cursor = common[-1] + _LAST_CHARACTER
                skipped = True
                break
            objects.append((key, info))
            cursor = key
        if not skipped and page.next_after is None:
            return objects, common, None


def _max_keys(text: str) -> int:
    if not text.isdigit():
        raise S3Error("InvalidArgument", "max-keys must be a non-negative integer")
    return min(int(text), MAX_KEYS)


def _encode_token(cursor: str) -> str:
    return base64.urlsafe_b64encode(cursor.encode()).decode()


def _decode_token(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise S3Error("InvalidArgument", "the continuation token is not one this server gave") from None
