"""The S3 API as an ASGI app: ``create_app`` over a store, ``app_from_env`` for ``blobstore serve --s3-port``.

Every request goes the same way: the router names the operation (501 for one this API lacks), SigV4 names
the access key and so the tenant, the key's scopes are checked, the handler runs; any error becomes an S3
XML error document with a ``RequestId``, also sent as ``x-amz-request-id``.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.convertors import PathConvertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from blobstore.asgi import labels
from blobstore.buckets import key_of
from blobstore.core.config import Settings
from blobstore.core.context import Clock, utc_now
from blobstore.core.instrument import Observer
from blobstore.s3 import buckets, checksums, lifecycle, multipart, objects, router, sigv2, sigv4, xml
from blobstore.s3.call import Call, header_text
from blobstore.s3.errors import S3Error, translate
from blobstore.s3.payload import CheckedBody
from blobstore.store import BlobStore

#: The environment variable ``blobstore serve --s3-region`` passes the region in.
REGION = "BLOBSTORE_S3_API_REGION"
#: The environment variable ``blobstore serve --s3-domain`` passes the virtual-host domain in.
DOMAIN = "BLOBSTORE_S3_API_DOMAIN"
DEFAULT_REGION = "us-east-1"
#: Seconds a client is asked to wait before retrying a 503.
RETRY_AFTER_SECONDS = 1
_log = logging.getLogger("blobstore.s3")
#: The route label of a request before its operation is known (blobstore.asgi.labels).
UNROUTED = "S3"

HANDLERS: dict[str, Callable[[Call], Awaitable[Response]]] = {
    "ListBuckets": buckets.list_buckets,
    "CreateBucket": buckets.create_bucket,
    "HeadBucket": buckets.head_bucket,
    "DeleteBucket": buckets.delete_bucket,
    "GetBucketLocation": buckets.get_bucket_location,
    "GetBucketVersioning": buckets.get_bucket_versioning,
    "GetBucketAcl": buckets.get_bucket_acl,
    "ListObjects": buckets.list_objects,
    "ListObjectsV2": buckets.list_objects_v2,
    "ListObjectVersions": buckets.list_object_versions,
    "PutObject": objects.put_object,
    "CopyObject": objects.copy_object,
    "GetObject": objects.get_object,
    "HeadObject": objects.head_object,
    "DeleteObject": objects.delete_object,
    "DeleteObjects": objects.delete_objects,
    "GetObjectAcl": objects.get_object_acl,
    "CreateMultipartUpload": multipart.create_multipart_upload,
    "UploadPart": multipart.upload_part,
    "UploadPartCopy": multipart.upload_part_copy,
    "CompleteMultipartUpload": multipart.complete_multipart_upload,
    "AbortMultipartUpload": multipart.abort_multipart_upload,
    "ListParts": multipart.list_parts,
    "ListMultipartUploads": multipart.list_multipart_uploads,
    "PutBucketLifecycleConfiguration": lifecycle.put_bucket_lifecycle_configuration,
    "GetBucketLifecycleConfiguration": lifecycle.get_bucket_lifecycle_configuration,
    "DeleteBucketLifecycle": lifecycle.delete_bucket_lifecycle,
}
_METHODS = ["GET", "HEAD", "PUT", "POST", "DELETE"]


class _AnyPathConvertor(PathConvertor):
    """Like ``path``, but across newlines too, so a key with a control character reaches the router (400)."""

    regex = r"[\s\S]*"


register_url_convertor("s3path", _AnyPathConvertor())


def create_app(
    store: BlobStore | None = None,
    *,
    settings: Settings | None = None,
    region: str = DEFAULT_REGION,
    domain: str | None = None,
    clock: Clock = utc_now,
    observer: Observer | None = None,
) -> Starlette:
    """The S3 API over ``store`` (left open), or over a store opened from ``settings`` (default: the environment,
    timed into ``observer``) when the app starts and closed when it stops; requests must be signed for ``region``.
    With a ``domain``, ``Host: BUCKET.domain`` addresses bucket BUCKET (virtual-host style) as well as path style.

    Each request's scope carries its route label (``S3 <operation>``) and tenant for the middleware around
    the app (blobstore.asgi.labels): ``blobstore serve --s3-port`` wraps it with the native API's access log,
    metrics, body timeout and shutdown answer."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        serving = store if store is not None else await BlobStore.open(settings, clock=clock, observer=observer)
        app.state.blobstore = serving
        try:
            yield
        finally:
            if store is None:
                await serving.close()

    async def endpoint(request: Request) -> Response:
        request_id = secrets.token_hex(8).upper()
        labels.label(request.scope, route=UNROUTED)
        try:
            response = await _answer(request, request.app.state.blobstore, region, domain)
        except Exception as exc:
            response = error_response(exc, request.url.path, request_id)
            if _has_body(request):  # it may be unread: the connection cannot carry another request after it
                response.headers["Connection"] = "close"
        response.headers["x-amz-request-id"] = request_id
        return response

    routes = [Route("/{path:s3path}", endpoint, methods=_METHODS)]
    return Starlette(routes=routes, lifespan=lifespan)


def app_from_env(store: BlobStore | None = None) -> Starlette:
    """The app over ``store`` or the store the environment names, signed for the region in :data:`REGION`,
    addressing buckets virtual-host style under the domain in :data:`DOMAIN` if set."""
    return create_app(store, region=os.environ.get(REGION) or DEFAULT_REGION, domain=os.environ.get(DOMAIN) or None)


async def _answer(request: Request, store: BlobStore, region: str, domain: str | None) -> Response:
    """Route, authenticate and run the request. SigV4 signs the path as sent; SigV2 and the router see it in
    path style (blobstore.s3.router.path_style)."""
    raw_path = request.scope.get("raw_path", request.scope["path"].encode()).decode("latin-1")
    path = router.path_style(raw_path, request.headers.get("host"), domain)
    params = sigv4.parse_query(request.scope["query_string"].decode("latin-1"))
    operation = router.route(request.method, path, params, request.headers)
    labels.label(request.scope, route=f"S3 {operation.name}")
    headers = [(name.decode("latin-1").lower(), header_text(value)) for name, value in request.scope["headers"]]
    object_key = None if operation.bucket is None or operation.key is None else key_of(operation.bucket, operation.key)
    if sigv2.is_presigned(params):
        caller = await sigv2.authenticate(
            store.core,
            method=request.method,
            raw_path=path,
            raw_query=request.scope["query_string"].decode("latin-1"),
            params=params,
            headers=headers,
            bucket=operation.bucket,
            object_key=object_key,
        )
    else:
        caller = await sigv4.authenticate(
            store.core,
            region,
            method=request.method,
            raw_path=raw_path,
            params=params,
            headers=headers,
            bucket=operation.bucket,
            object_key=object_key,
        )
    labels.label(request.scope, tenant=caller.key.info.tenant)
    if operation.scope not in caller.key.info.scopes:
        raise S3Error("AccessDenied", f"this access key lacks the {operation.scope!r} scope")
    call = Call(
        store=store,
        tenant=store.tenant(caller.key.info.tenant),
        region=region,
        operation=operation,
        params=dict(params),
        headers=request.headers,
        body=CheckedBody(
            request.stream(),
            caller.payload,
            request.headers.get("content-md5"),
            request.headers.get("x-amz-trailer"),
            signer=caller.chunks,
            # CompleteMultipartUpload's checksum is the object's, not its body's (blobstore.s3.multipart)
            checksum=None if operation.name == "CompleteMultipartUpload" else checksums.from_headers(request.headers),
        ),
        scopes=caller.key.info.scopes,
        bucket_created_at=caller.key.bucket_created_at,
        quota_set=caller.key.quota_set,
        version=caller.key.version,
    )
    return await HANDLERS[operation.name](call)


def _has_body(request: Request) -> bool:
    return request.headers.get("content-length", "0") != "0" or "transfer-encoding" in request.headers


def error_response(exc: BaseException, resource: str, request_id: str) -> Response:
    """The S3 XML error document answering ``exc`` (``Retry-After`` on a 503), for ``resource`` (the path)."""
    error = translate(exc)
    if error.code == "InternalError":
        _log.error("S3 request %s failed", request_id, exc_info=exc)
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if error.status == 503 else {}
    body = xml.error(error.code, error.message, resource, request_id)
    return Response(body, status_code=error.status, media_type=xml.CONTENT_TYPE, headers=headers)
