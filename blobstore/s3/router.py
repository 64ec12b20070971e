"""Which S3 operation a request is, from its method, path (path-style: ``/BUCKET/KEY``) and query alone.

A virtual-host-style request (``Host: BUCKET.DOMAIN``, path ``/KEY``) is first given its path-style path by
:func:`path_style`, when the server has a domain (``blobstore serve --s3-domain``).

Anything this API does not implement is named and answered 501 ``NotImplemented`` before it is authorised
further or touches the store.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import unquote

from blobstore.model.keys import STORED_HEADERS
from blobstore.s3.errors import S3Error, not_implemented

#: The longest S3 object key, in bytes of UTF-8 (the native key ``<bucket>/<key>`` is longer).
MAX_KEY_BYTES = 1024
#: Query parameters that never change the operation: presigned-URL fields (SigV2 here, SigV4's X-Amz-*) and
#: boto3's ``x-id``.
_NEUTRAL = {"x-id", "AWSAccessKeyId", "Expires", "Signature"}
#: The parameters of the listing operations.
_LISTING = {
    "list-type",
    "prefix",
    "delimiter",
    "max-keys",
    "continuation-token",
    "start-after",
    "encoding-type",
    "marker",
    "fetch-owner",
}
#: The parameters of ListBuckets.
_LIST_BUCKETS = {"max-buckets", "continuation-token", "prefix"}
#: Request headers that ask for what this API does not do yet (the conditional ones: except where
#: :data:`_CONDITIONS` handles them).
_UNSUPPORTED_HEADERS = {
    "if-match": "conditional requests",
    "if-none-match": "conditional requests",
    "if-modified-since": "conditional requests",
    "if-unmodified-since": "conditional requests",
    "x-amz-copy-source-range": "a copy source range outside UploadPartCopy",
}
#: The GetObject / HeadObject query parameters that set a response header whatever the object stores
#: (``response-content-type``: its Content-Type).
RESPONSE_OVERRIDES = frozenset("response-" + name for name in (*STORED_HEADERS, "content-type"))
_READ_CONDITIONS = frozenset({"if-match", "if-none-match", "if-modified-since", "if-unmodified-since"})
#: The conditional headers each method handles (PUT: PutObject's, not a copy's destination).
_CONDITIONS = {"GET": _READ_CONDITIONS, "HEAD": _READ_CONDITIONS, "PUT": frozenset({"if-match", "if-none-match"})}


@dataclass(frozen=True)
class Operation:
    """A request's S3 operation (named as in the S3 API reference), its bucket and key, and the scope it needs."""

    name: str
    bucket: str | None
    key: str | None
    scope: str


def path_style(raw_path: str, host: str | None, domain: str | None) -> str:
    """The request's path in path style (``/BUCKET/KEY``): ``raw_path`` itself, unless ``host`` (its port aside) is
    ``BUCKET.domain``, then ``/BUCKET`` followed by ``raw_path`` (``/BUCKET`` alone for ``/``, as SigV2 clients
    sign a bucket's resource). The bare domain and any other host are path style."""
    if not domain or host is None:
        return raw_path
    name, _, port = host.lower().rpartition(":")
    if not port.isdigit():
        name = host.lower()
    bucket = name.removesuffix("." + domain.lower())
    if bucket in (name, ""):
        return raw_path
    return f"/{bucket}" if raw_path == "/" else f"/{bucket}{raw_path}"


def route(method: str, raw_path: str, params: Sequence[tuple[str, str]], headers: Mapping[str, str]) -> Operation:
    """The operation of the request; S3Error NotImplemented for one this API lacks, MethodNotAllowed for none."""
    bucket, key = _split(raw_path)
    names = {name for name, _ in params if name not in _NEUTRAL and not name.startswith("X-Amz-")}
    if (multipart := _multipart_operation(method, bucket, key, names, headers)) is not None:
        return multipart
    if method == "POST" and bucket is not None and key is None and names == {"delete"}:
        return Operation("DeleteObjects", bucket, None, "delete")
    if method == "POST":
        raise not_implemented("POST " + ("?" + ",".join(sorted(names)) if names else "(browser uploads)"))
    if bucket is None:
        if method != "GET":
            raise S3Error("MethodNotAllowed", "the service accepts only GET (ListBuckets)")
        if not names <= _LIST_BUCKETS:
            raise not_implemented(f"ListBuckets with ?{','.join(sorted(names - _LIST_BUCKETS))}")
        return Operation("ListBuckets", None, None, "read")
    if key is None:
        return _bucket_operation(method, bucket, names, dict(params))
    handled = _CONDITIONS.get(method, frozenset()) if "x-amz-copy-source" not in headers else frozenset()
    for header, feature in _UNSUPPORTED_HEADERS.items():
        if header in headers and header not in handled:
            raise not_implemented(feature)
    if method == "GET" and names == {"acl"}:
        return Operation("GetObjectAcl", bucket, key, "read")
    if method in ("GET", "HEAD"):
        names -= RESPONSE_OVERRIDES | {"partNumber"}
    if names:
        raise not_implemented(f"{method} of an object with ?{','.join(sorted(names))}")
    by_method = {"PUT": ("PutObject", "write"), "GET": ("GetObject", "read"), "HEAD": ("HeadObject", "read")}
    if method == "DELETE":
        return Operation("DeleteObject", bucket, key, "delete")
    if method not in by_method:
        raise S3Error("MethodNotAllowed", f"{method} is not allowed on an object")
    name, scope = by_method[method]
    if name == "PutObject" and "x-amz-copy-source" in headers:
        name = "CopyObject"
    return Operation(name, bucket, key, scope)


#: The operations on a bucket's ``?lifecycle`` (blobstore.s3.lifecycle), by method.
_LIFECYCLE = {
    "GET": ("GetBucketLifecycleConfiguration", "read"),
    "PUT": ("PutBucketLifecycleConfiguration", "write"),
    "DELETE": ("DeleteBucketLifecycle", "write"),
}
#: The parameters of ListMultipartUploads and of ListParts.
_UPLOAD_LISTING = {"uploads", "prefix", "key-marker", "upload-id-marker", "max-uploads"}
_PART_LISTING = {"uploadId", "part-number-marker", "max-parts"}


def _multipart_operation(
    method: str, bucket: str | None, key: str | None, names: set[str], headers: Mapping[str, str]
) -> Operation | None:
    """The multipart upload operation of the request (blobstore.s3.multipart), or None if it is none."""
    if bucket is None:
        return None
    if key is None:
        listing = method == "GET" and "uploads" in names and names <= _UPLOAD_LISTING
        return Operation("ListMultipartUploads", bucket, None, "read") if listing else None
    operations = {
        ("POST", frozenset({"uploads"})): ("CreateMultipartUpload", "write"),
        ("POST", frozenset({"uploadId"})): ("CompleteMultipartUpload", "write"),
        ("PUT", frozenset({"partNumber", "uploadId"})): ("UploadPart", "write"),
        ("DELETE", frozenset({"uploadId"})): ("AbortMultipartUpload", "write"),
    }
    if method == "GET" and "uploadId" in names and names <= _PART_LISTING:
        return Operation("ListParts", bucket, key, "read")
    if (method, frozenset(names)) not in operations:
        return None
    name, scope = operations[method, frozenset(names)]
    if name == "UploadPart" and "x-amz-copy-source" in headers:
        name = "UploadPartCopy"
    return Operation(name, bucket, key, scope)


def _bucket_operation(method: str, bucket: str, names: set[str], params: dict[str, str]) -> Operation:
    readers = {"location": "GetBucketLocation", "versioning": "GetBucketVersioning", "acl": "GetBucketAcl"}
    if method == "GET" and len(names) == 1 and next(iter(names)) in readers:
        return Operation(readers[next(iter(names))], bucket, None, "read")
    if method == "GET" and "versions" in names and names <= _LISTING | {"versions", "key-marker", "version-id-marker"}:
        return Operation("ListObjectVersions", bucket, None, "read")
    if method == "GET" and names <= _LISTING:
        return Operation("ListObjectsV2" if params.get("list-type") == "2" else "ListObjects", bucket, None, "read")
    if names == {"lifecycle"} and method in _LIFECYCLE:
        name, scope = _LIFECYCLE[method]
        return Operation(name, bucket, None, scope)
    if names:
        raise not_implemented(f"{method} of a bucket with ?{','.join(sorted(names))}")
    operations = {
        "PUT": ("CreateBucket", "write"),
        "HEAD": ("HeadBucket", "read"),
        "DELETE": ("DeleteBucket", "delete"),
    }
    if method not in operations:
        raise S3Error("MethodNotAllowed", f"{method} is not allowed on a bucket")
    name, scope = operations[method]
    return Operation(name, bucket, None, scope)


def _split(raw_path: str) -> tuple[str | None, str | None]:
    """(bucket, key) of a path-style path, each percent-decoded; None for what the path lacks."""
    bucket, _, key = raw_path.removeprefix("/").partition("/")
    try:
        decoded_key = unquote(key, errors="strict")
    except UnicodeDecodeError:
        raise S3Error("InvalidArgument", "the key is not percent-encoded UTF-8") from None
    return unquote(bucket) or None, checked_key(decoded_key) or None


def checked_key(key: str) -> str:
    """``key`` if S3 allows it, of at most :data:`MAX_KEY_BYTES` bytes of UTF-8; else KeyTooLongError."""
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise S3Error("KeyTooLongError", f"Your key is too long: at most {MAX_KEY_BYTES} bytes of UTF-8")
    return key
