"""Objects in an S3 bucket (AWS or any S3-compatible service) through aioboto3.

One client serves the storage for its whole life; botocore retries transient
failures itself (standard mode: exponential backoff with jitter). Every error
from botocore or aiohttp is translated once, by :func:`_translate`, keeping
``__cause__``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Iterator, Sequence
from contextlib import AsyncExitStack
from datetime import UTC
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aioboto3
import aiohttp
from aiobotocore.config import AioConfig
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    InvalidRegionError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from blobstore.errors import (
    BlobStoreError,
    ConfigurationError,
    IntegrityError,
    ObjectMissing,
    StorageUnavailable,
    StorageUnreachable,
)
from blobstore.storage import s3_stalls
from blobstore.storage.base import (
    CHUNK_SIZE,
    IncompleteUpload,
    ObjectInfo,
    ObjectStorage,
    Source,
    source_size,
)

MiB = 1024 * 1024
_MIN_PART_SIZE = 5 * MiB
_MAX_PARTS = 10_000
_DELETE_BATCH = 1000

_MISSING = frozenset({"NoSuchKey", "NoSuchUpload", "NotFound", "404"})
#: A conditional write lost: the key exists (412), or another conditional write to it is in flight (409).
_PRECONDITION_FAILED = frozenset({"PreconditionFailed", "412"})
_CONDITIONAL_CONFLICT = frozenset({"ConditionalRequestConflict", "409"})
_DENIED = frozenset(
    {"AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"}
)
_RETRYABLE_4XX = frozenset({408, 429})
_BACKEND_ERRORS = (BotoCoreError, ClientError, aiohttp.ClientError)


class S3Storage(ObjectStorage):
    """Objects under ``prefix/`` in ``bucket``; large writes go up as concurrent multipart uploads.

    Storages may share an aioboto3 ``session`` (its credentials and loaded service models);
    each still opens its own client, once.

    No staging (:attr:`~ObjectStorage.supports_staging` is False): a multipart upload is bound to its key
    when it starts, and the key names the digest, known only after the last byte; staging under another key
    and copying (CopyObject, UploadPartCopy) stores the bytes twice and takes about as long as uploading
    them again. A put of a stream is spooled to a local file and uploaded once its digest is known. Objects
    joined from others (:meth:`write_concatenated`, a multipart completion) are copied by S3 itself where
    their pieces allow (UploadPartCopy), no byte passing through this process.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None,
        region: str,
        multipart_threshold: int = 16 * MiB,
        part_size: int = 8 * MiB,
        max_concurrency: int = 4,
        connect_timeout: float = 10,
        read_timeout: float = 60,
        max_attempts: int = 5,
        session: aioboto3.Session | None = None,
    ) -> None:
        if endpoint_url is not None:
            parts = urlsplit(endpoint_url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ConfigurationError(
                    f"BLOBSTORE_S3_ENDPOINT_URL: {endpoint_url!r} is not an http:// or https:// URL"
                )
        if part_size < _MIN_PART_SIZE or max_concurrency < 1:
            raise ValueError("part_size must be at least 5 MiB and max_concurrency at least 1")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        self.max_concurrency = max_concurrency
        self.endpoint = endpoint_url or f"AWS S3 ({region})"
        self._client_args: dict[str, Any] = {
            "endpoint_url": endpoint_url,
            "region_name": region,
            "config": AioConfig(
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                retries={"mode": "standard", "max_attempts": max_attempts},
                max_pool_connections=max(10, max_concurrency),
                # blobstore verifies content by its own digests; many S3-compatible
                # services reject the checksum headers botocore sends by default.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                # Custom endpoints (MinIO and friends) rarely resolve bucket subdomains.
                s3={"addressing_style": "path"} if endpoint_url else None,
            ),
        }
        self._session = session or aioboto3.Session()
        self._stack = AsyncExitStack()
        self._client: Any = None
        self._lock = asyncio.Lock()
        self._closed = False
        #: The marker's key once :meth:`require_marker` was called.
        self._marker: str | None = None

    @property
    def supports_incomplete_uploads(self) -> bool:
        """Failed multipart uploads may linger in the bucket."""
        return True

    async def _s3(self) -> Any:
        """Return the one client, creating it on first use."""
        if self._closed:
            raise RuntimeError(f"storage {self.url} is closed")
        async with self._lock:
            if self._client is None:
                with self._translated(checking=True):
                    client = self._session.client("s3", **self._client_args)
                    self._client = await self._stack.enter_async_context(client)
                    s3_stalls.without_expect_continue(self._client)
        return self._client

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    @contextlib.contextmanager
    def _translated(self, key: str = "", *, checking: bool = False) -> Iterator[None]:
        try:
            yield
        except _BACKEND_ERRORS as error:
            raise _translate(error, self, key, checking=checking) from error

    async def check(self) -> None:
        """Verify with HeadBucket that the bucket exists and the credentials may use it; once the marker is
        required, with HeadObject that the marker is still there (StorageUnavailable if not)."""
        s3 = await self._s3()
        if self._marker is None:
            with self._translated(checking=True):
                await s3.head_bucket(Bucket=self.bucket)
            return
        try:
            with self._translated(self._marker):
                await s3.head_object(Bucket=self.bucket, Key=self._key(self._marker))
        except ObjectMissing as error:
            raise StorageUnavailable(
                f"S3 storage {self.url} lost its marker {self._marker} (bucket or prefix deleted?); "
                "it is never recreated: restore it"
            ) from error

    def require_marker(self, key: str) -> None:
        """Remember ``key`` for :meth:`check`. Writes add no request to look for it: a deleted bucket fails
        them anyway (StorageUnavailable), while a deleted prefix is seen only by :meth:`check`."""
        self._marker = key

    async def write(self, key: str, source: Source) -> None:
        """PutObject up to ``multipart_threshold`` bytes, a multipart upload above it."""
        size = source_size(source)
        if size > self.multipart_threshold:
            await self._write_multipart(key, partial(self._upload_parts, key=key, source=source, size=size))
            return
        data = source if isinstance(source, bytes) else await asyncio.to_thread(source.read_bytes)
        s3 = await self._s3()
        with self._translated(key):
            await s3.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    async def write_if_absent(self, key: str, data: bytes) -> bool:
        """PutObject with ``If-None-Match: *``; S3 answers 412 when the key exists."""
        s3 = await self._s3()
        for attempt in range(5):
            try:
                await s3.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, IfNoneMatch="*")
                return True
            except ClientError as error:
                code = str(error.response.get("Error", {}).get("Code", ""))
                if code in _PRECONDITION_FAILED:
                    return False
                if code not in _CONDITIONAL_CONFLICT or attempt == 4:
                    raise _translate(error, self, key, checking=False) from error
            except _BACKEND_ERRORS as error:
                raise _translate(error, self, key, checking=False) from error
            await asyncio.sleep(0.1 * 2**attempt)
        raise AssertionError("unreachable")

    async def write_concatenated(self, key: str, pieces: Sequence[tuple[str, int]]) -> None:
        """A multipart upload whose parts are copied by S3 itself (UploadPartCopy of each piece's range), where
        every piece but the last is at least S3's 5 MiB part minimum; else as the default does (the pieces
        read into a temporary file and written). A piece shorter than its length is found by the joined
        object's length (one HEAD), which is then deleted: IntegrityError (an S3 that refuses such a range
        instead fails the copy: StorageUnavailable)."""
        if not pieces or len(pieces) > _MAX_PARTS or any(length < _MIN_PART_SIZE for _, length in pieces[:-1]):
            await super().write_concatenated(key, pieces)
            return
        await self._write_multipart(key, partial(self._copy_parts, key=key, pieces=pieces))
        joined = await self.stat(key)
        expected = sum(length for _, length in pieces)
        if joined is None or joined.size != expected:  # a piece shorter than its length (S3 copies what there is)
            await self.delete_many([key])
            raise IntegrityError(
                f"joining {len(pieces)} objects into {key} made {joined and joined.size} bytes, not {expected}"
            )

    async def _copy_parts(
        self, s3: Any, upload_id: str, *, key: str, pieces: Sequence[tuple[str, int]]
    ) -> list[dict[str, Any]]:
        """Part ``n`` of the upload to ``key`` is S3's copy of the first ``length`` bytes of piece ``n``."""

        async def copy(number: int, source: str, length: int) -> dict[str, Any]:
            with self._translated(source):
                response = await s3.upload_part_copy(
                    Bucket=self.bucket,
                    Key=self._key(key),
                    UploadId=upload_id,
                    PartNumber=number,
                    CopySource={"Bucket": self.bucket, "Key": self._key(source)},
                    CopySourceRange=f"bytes=0-{length - 1}",
                )
            return {"PartNumber": number, "ETag": response["CopyPartResult"]["ETag"]}

        return await self._gathered(copy(number, *piece) for number, piece in enumerate(pieces, 1))

    async def _write_multipart(self, key: str, parts_of: Callable[[Any, str], Awaitable[list[dict[str, Any]]]]) -> None:
        """Begin a multipart upload of ``key``, have ``parts_of(client, upload id)`` upload its parts, and
        complete it; abort the upload on any failure."""
        s3 = await self._s3()
        with self._translated(key):
            upload = await s3.create_multipart_upload(Bucket=self.bucket, Key=self._key(key))
        upload_id = upload["UploadId"]
        try:
            parts = await parts_of(s3, upload_id)
            with self._translated(key):
                await s3.complete_multipart_upload(
                    Bucket=self.bucket, Key=self._key(key), UploadId=upload_id, MultipartUpload={"Parts": parts}
                )
        except BaseException:
            # A failed abort leaves the upload for GC (incomplete_uploads); the first error matters.
            with contextlib.suppress(*_BACKEND_ERRORS):
                await s3.abort_multipart_upload(Bucket=self.bucket, Key=self._key(key), UploadId=upload_id)
            raise

    async def _upload_parts(
        self, s3: Any, upload_id: str, *, key: str, source: Source, size: int
    ) -> list[dict[str, Any]]:
        part_size = max(self.part_size, -(-size // _MAX_PARTS))

        async def upload(number: int, offset: int) -> dict[str, Any]:
            length = min(part_size, size - offset)
            if isinstance(source, bytes):
                body = source[offset : offset + length]
            else:
                body = await asyncio.to_thread(_read_part, source, offset, length)
            with self._translated(key):
                response = await s3.upload_part(
                    Bucket=self.bucket, Key=self._key(key), UploadId=upload_id, PartNumber=number, Body=body
                )
            return {"PartNumber": number, "ETag": response["ETag"]}

        return await self._gathered(
            upload(number, offset) for number, offset in enumerate(range(0, size, part_size), 1)
        )

    async def _gathered(self, parts: Iterable[Coroutine[Any, Any, dict[str, Any]]]) -> list[dict[str, Any]]:
        """The results of ``parts``, run at most ``max_concurrency`` at a time; on a failure the others are
        cancelled and the first error raised."""
        slots = asyncio.Semaphore(self.max_concurrency)

        async def limited(part: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
            async with slots:
                return await part

        tasks = [asyncio.create_task(limited(part)) for part in parts]
        try:
            return await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def read(self, key: str, byte_range: tuple[int, int] | None = None) -> AsyncGenerator[bytes, None]:
        """Stream GetObject's body (Range ``bytes=first-last`` when given); the body is closed on early exit."""
        s3 = await self._s3()
        extra = {"Range": f"bytes={byte_range[0]}-{byte_range[1]}"} if byte_range else {}
        with self._translated(key):
            response = await s3.get_object(Bucket=self.bucket, Key=self._key(key), **extra)
            body = response["Body"]
            try:
                while chunk := await body.read(CHUNK_SIZE):
                    yield chunk
            finally:
                body.close()

    async def stat(self, key: str) -> ObjectInfo | None:
        """HeadObject; None when S3 answers 404."""
        s3 = await self._s3()
        try:
            with self._translated(key):
                response = await s3.head_object(Bucket=self.bucket, Key=self._key(key))
        except ObjectMissing:
            return None
        return ObjectInfo(key, response["ContentLength"], response["LastModified"].astimezone(UTC))

    async def delete_many(self, keys: Sequence[str]) -> None:
        """DeleteObjects in batches of 1000; any per-key error other than a missing key raises StorageUnavailable."""
        s3 = await self._s3()
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = keys[start : start + _DELETE_BATCH]
            with self._translated():
                response = await s3.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": self._key(key)} for key in batch], "Quiet": True},
                )
            errors = [error for error in response.get("Errors", []) if error.get("Code") not in _MISSING]
            if errors:
                first = errors[0]
                raise StorageUnavailable(
                    f"S3 failed to delete {len(errors)} objects from {self.url}, "
                    f"first {first.get('Key')!r}: {first.get('Code')} {first.get('Message')}"
                )

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        """Page through ListObjectsV2 under the storage prefix, yielding keys without it."""
        s3 = await self._s3()
        strip = len(self._key(""))
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self._key(prefix))
        with self._translated():
            async for page in pages:
                for item in page.get("Contents", []):
                    yield ObjectInfo(item["Key"][strip:], item["Size"], item["LastModified"].astimezone(UTC))

    async def set_storage_class(self, key: str, storage_class: str) -> None:
        """CopyObject of the object onto itself with the new StorageClass (metadata copied): S3 replaces the
        object atomically, same bytes. One request, so objects up to 5 GiB (blobstore.maintenance.transitions
        leaves larger ones where they are)."""
        s3 = await self._s3()
        with self._translated(key):
            await s3.copy_object(
                Bucket=self.bucket,
                Key=self._key(key),
                CopySource={"Bucket": self.bucket, "Key": self._key(key)},
                StorageClass=storage_class,
                MetadataDirective="COPY",
            )

    async def incomplete_uploads(self) -> AsyncIterator[IncompleteUpload]:
        """Page through ListMultipartUploads under the storage prefix, yielding keys without it."""
        s3 = await self._s3()
        strip = len(self._key(""))
        pages = s3.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=self._key(""))
        with self._translated():
            async for page in pages:
                for upload in page.get("Uploads", []):
                    started = upload["Initiated"].astimezone(UTC)
                    yield IncompleteUpload(upload["Key"][strip:], started, upload["UploadId"])

    async def abort_upload(self, upload: IncompleteUpload) -> None:
        """AbortMultipartUpload; an upload already gone is ignored."""
        if upload.key is None:
            raise ValueError("an S3 multipart upload always has a key")
        s3 = await self._s3()
        with contextlib.suppress(ObjectMissing), self._translated(upload.key):
            await s3.abort_multipart_upload(Bucket=self.bucket, Key=self._key(upload.key), UploadId=upload.handle)

    async def enclosing_object(self, name: str) -> str | None:
        """HeadObject ``name`` at each shorter prefix of the storage prefix, nearest first."""
        segments = self.prefix.split("/") if self.prefix else []
        for depth in range(len(segments) - 1, -1, -1):
            above = "/".join(segments[:depth])
            s3 = await self._s3()
            try:
                with self._translated(name):
                    await s3.head_object(Bucket=self.bucket, Key=f"{above}/{name}" if above else name)
            except ObjectMissing:
                continue
            return f"s3://{self.bucket}/{above}" if above else f"s3://{self.bucket}"
        return None

    async def close(self) -> None:
        """Close the client; later calls raise RuntimeError. Safe to call twice."""
        self._closed = True
        self._client = None
        await self._stack.aclose()


def _read_part(path: Path, offset: int, length: int) -> bytes:
    with path.open("rb") as file:
        file.seek(offset)
        data = file.read(length)
    if len(data) != length:
        raise OSError(f"{path} shrank during the upload")
    return data


def _translate(error: Exception, storage: S3Storage, key: str, *, checking: bool) -> BlobStoreError:
    """Map a botocore or aiohttp error to the blobstore error a caller can act on."""
    code, status = "", 0
    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code", ""))
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
    if isinstance(error, InvalidRegionError):
        return ConfigurationError(f"BLOBSTORE_S3_REGION: {error}")
    if isinstance(error, NoCredentialsError | PartialCredentialsError) or code in _DENIED:
        return ConfigurationError(
            f"S3 refused access to bucket '{storage.bucket}' ({code or error}); check the AWS credentials "
            "(AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or the AWS profile)"
        )
    if checking and (code == "NoSuchBucket" or code in _MISSING):
        return ConfigurationError(
            f"bucket '{storage.bucket}' does not exist at {storage.endpoint}; create it or fix BLOBSTORE_STORAGE_URL"
        )
    if code == "NoSuchBucket":  # it existed when the storage was opened: an outage until it is back
        return StorageUnavailable(f"bucket '{storage.bucket}' no longer exists at {storage.endpoint}")
    if code in _MISSING:
        return ObjectMissing(key)
    if checking and isinstance(error, BotoConnectionError):
        return StorageUnreachable(
            f"cannot reach the S3 endpoint {storage.endpoint} ({error}); check BLOBSTORE_S3_ENDPOINT_URL"
        )
    unavailable = StorageUnavailable(f"S3 request on {storage.url} failed: {error}")
    if 400 <= status < 500 and status not in _RETRYABLE_4XX:
        unavailable.retryable = False
    return unavailable
