"""S3Storage passes the conformance suite against a real S3 HTTP endpoint (conftest's ``s3``)."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import aioboto3
import pytest
from aiobotocore.client import AioBaseClient
from aiobotocore.config import AioConfig
from botocore.exceptions import ClientError

from blobstore.errors import ConfigurationError, ObjectMissing, StorageUnavailable, StorageUnreachable
from blobstore.storage import ObjectStorage, S3Storage, open_storage_from_url, read_all
from blobstore.testing.storage_suite import StorageConformance
from tests.support.s3_server import S3Endpoint, temporary_bucket, unique_bucket_name

pytestmark = pytest.mark.s3

MiB = 1024 * 1024
ApiCall = Callable[[Any, str, dict[str, Any]], Awaitable[dict[str, Any]]]


@pytest.fixture(scope="module")
def endpoint(s3: S3Endpoint) -> S3Endpoint:
    """The session's S3 endpoint (conftest ``s3``: moto unless the environment names one)."""
    return s3


@pytest.fixture(scope="module")
def session(endpoint: S3Endpoint) -> aioboto3.Session:
    """One session for the module: it loads the S3 service model once, which makes clients cheap."""
    return aioboto3.Session()


@pytest.fixture
async def bucket(endpoint: S3Endpoint, session: aioboto3.Session) -> AsyncIterator[str]:
    async with temporary_bucket(endpoint, session) as name:
        yield name


@pytest.fixture
async def raw(endpoint: S3Endpoint, session: aioboto3.Session) -> AsyncIterator[Any]:
    """A plain S3 client, to look at the bucket behind the storage's back."""
    config = AioConfig(s3={"addressing_style": "path"})
    async with session.client("s3", endpoint_url=endpoint.url, region_name=endpoint.region, config=config) as client:
        yield client


MakeStorage = Callable[..., S3Storage]


@pytest.fixture
def make_storage(endpoint: S3Endpoint, session: aioboto3.Session) -> MakeStorage:
    """``make_storage(bucket, prefix="", **options)``: an S3Storage on the test endpoint."""

    def make(bucket: str, prefix: str = "", **options: Any) -> S3Storage:
        return S3Storage(bucket, prefix, endpoint_url=endpoint.url, region=endpoint.region, session=session, **options)

    return make


def intercept(monkeypatch: pytest.MonkeyPatch, handler: Callable[[str, dict[str, Any], ApiCall, Any], Any]) -> None:
    """Route every S3 API call through ``handler(operation, params, original, client)``."""
    original: ApiCall = AioBaseClient._make_api_call

    async def patched(client: Any, operation: str, params: dict[str, Any]) -> Any:
        return await handler(operation, params, original, client)

    monkeypatch.setattr(AioBaseClient, "_make_api_call", patched)


async def uploads(raw: Any, bucket: str) -> list[str]:
    response = await raw.list_multipart_uploads(Bucket=bucket)
    return [upload["Key"] for upload in response.get("Uploads", [])]


class TestS3Storage(StorageConformance):
    @pytest.fixture
    async def storage(self, make_storage: MakeStorage, bucket: str) -> AsyncIterator[ObjectStorage]:
        async with make_storage(bucket) as storage:
            await storage.check()
            yield storage


class TestS3StorageUnderPrefix(StorageConformance):
    @pytest.fixture
    async def storage(self, make_storage: MakeStorage, bucket: str) -> AsyncIterator[ObjectStorage]:
        async with make_storage(bucket, "/deploy/blobs/") as storage:
            yield storage


async def test_prefix_is_prepended_and_stripped(make_storage: MakeStorage, bucket: str, raw: Any) -> None:
    """With a prefix, objects live under prefix/ in the bucket and list without it."""
    async with make_storage(bucket, "deploy/blobs") as storage:
        await storage.write("ab/key", b"x")
        response = await raw.list_objects_v2(Bucket=bucket)
        assert [item["Key"] for item in response["Contents"]] == ["deploy/blobs/ab/key"]
        assert [info.key async for info in storage.list("ab/")] == ["ab/key"]
        assert storage.url == f"s3://{bucket}/deploy/blobs"


@pytest.mark.parametrize("from_path", [True, False], ids=["path", "bytes"])
async def test_multipart_upload(
    make_storage: MakeStorage, bucket: str, raw: Any, tmp_path: Path, from_path: bool
) -> None:
    """An object above the threshold goes up in parts (a 3-part ETag) and reads back whole."""
    data = os.urandom(11 * MiB)
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    async with make_storage(bucket, multipart_threshold=5 * MiB, part_size=5 * MiB) as storage:
        await storage.write("big", source if from_path else data)
        assert await read_all(storage, "big") == data
    head = await raw.head_object(Bucket=bucket, Key="big")
    assert head["ETag"].endswith('-3"')
    assert await uploads(raw, bucket) == []


async def test_failed_multipart_upload_is_aborted(
    make_storage: MakeStorage, bucket: str, raw: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When a part fails the upload is aborted: no object, no lingering multipart upload."""
    calls: list[str] = []

    async def fail_part_two(operation: str, params: dict[str, Any], original: ApiCall, client: Any) -> Any:
        calls.append(operation)
        if operation == "UploadPart" and params["PartNumber"] == 2:
            error = {"Code": "InternalError", "Message": "injected"}
            raise ClientError({"Error": error, "ResponseMetadata": {"HTTPStatusCode": 500}}, operation)
        return await original(client, operation, params)

    async with make_storage(bucket, multipart_threshold=5 * MiB, part_size=5 * MiB) as storage:
        intercept(monkeypatch, fail_part_two)
        with pytest.raises(StorageUnavailable, match="injected") as raised:
            await storage.write("doomed", os.urandom(11 * MiB))
        monkeypatch.undo()
        assert isinstance(raised.value.__cause__, ClientError)
        assert "AbortMultipartUpload" in calls
        assert "CompleteMultipartUpload" not in calls
        assert await storage.stat("doomed") is None
    assert await uploads(raw, bucket) == []


async def test_incomplete_uploads_are_listed_under_the_prefix_only(
    make_storage: MakeStorage, bucket: str, raw: Any
) -> None:
    """Incomplete uploads under the prefix are listed (keys without the prefix) and abortable; others never."""
    await raw.create_multipart_upload(Bucket=bucket, Key="mine/crashed")
    await raw.create_multipart_upload(Bucket=bucket, Key="elsewhere/crashed")
    async with make_storage(bucket, "mine") as storage:
        assert storage.supports_incomplete_uploads
        found = [upload async for upload in storage.incomplete_uploads()]
        assert [upload.key for upload in found] == ["crashed"]
        assert found[0].started.utcoffset() == timedelta(0)
        await storage.abort_upload(found[0])
        await storage.abort_upload(found[0])  # already gone: ignored
    assert await uploads(raw, bucket) == ["elsewhere/crashed"]


async def test_delete_many_batches_by_thousand(
    make_storage: MakeStorage, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deleting 1005 keys sends two DeleteObjects requests of at most 1000 keys."""
    batches: list[int] = []

    async def count(operation: str, params: dict[str, Any], original: ApiCall, client: Any) -> Any:
        if operation == "DeleteObjects":
            batches.append(len(params["Delete"]["Objects"]))
        return await original(client, operation, params)

    async with make_storage(bucket) as storage:
        intercept(monkeypatch, count)
        await storage.delete_many([f"k/{n}" for n in range(1005)])
    assert batches == [1000, 5]


async def test_delete_many_reports_per_key_errors(
    make_storage: MakeStorage, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A per-key error in a DeleteObjects response raises StorageUnavailable naming the key."""

    async def refuse(operation: str, params: dict[str, Any], original: ApiCall, client: Any) -> Any:
        assert operation == "DeleteObjects"
        return {"Errors": [{"Key": "k/locked", "Code": "InternalError", "Message": "try again"}]}

    async with make_storage(bucket) as storage:
        intercept(monkeypatch, refuse)
        with pytest.raises(StorageUnavailable, match="k/locked"):
            await storage.delete_many(["k/locked", "k/free"])


async def test_one_client_for_the_storage_life(
    make_storage: MakeStorage, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every operation reuses one client; after close the storage refuses work."""
    created: list[object] = []
    original = aioboto3.Session.client

    def counting(session: aioboto3.Session, *args: Any, **kwargs: Any) -> Any:
        created.append(args)
        return original(session, *args, **kwargs)

    monkeypatch.setattr(aioboto3.Session, "client", counting)
    storage = make_storage(bucket)
    await storage.check()
    await storage.write("k", b"v")
    assert await read_all(storage, "k") == b"v"
    assert await storage.stat("k") is not None
    assert [info.key async for info in storage.list()] == ["k"]
    await storage.delete_many(["k"])
    assert len(created) == 1
    await storage.close()
    with pytest.raises(RuntimeError, match="closed"):
        await storage.stat("k")


async def test_missing_object_keeps_the_cause(make_storage: MakeStorage, bucket: str) -> None:
    """A missing object raises ObjectMissing caused by botocore's NoSuchKey."""
    async with make_storage(bucket) as storage:
        with pytest.raises(ObjectMissing) as raised:
            await read_all(storage, "absent")
    assert isinstance(raised.value.__cause__, ClientError)


async def test_early_exit_from_read_closes_the_body(make_storage: MakeStorage, bucket: str) -> None:
    """Leaving a read after the first chunk releases the response, and the client still works."""
    async with make_storage(bucket) as storage:
        await storage.write("big", os.urandom(3 * MiB))
        stream = storage.read("big")
        assert len(await anext(stream)) > 0
        await stream.aclose()
        assert await read_all(storage, "big") != b""


async def test_check_missing_bucket(make_storage: MakeStorage) -> None:
    """check on a bucket that does not exist names the bucket and BLOBSTORE_STORAGE_URL."""
    name = unique_bucket_name()
    async with make_storage(name) as storage:
        with pytest.raises(ConfigurationError, match=f"bucket '{name}' does not exist.*BLOBSTORE_STORAGE_URL"):
            await storage.check()


async def test_check_unreachable_endpoint() -> None:
    """check against a closed port is StorageUnreachable (a ConfigurationError) naming BLOBSTORE_S3_ENDPOINT_URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    storage = S3Storage(
        "bucket", endpoint_url=f"http://127.0.0.1:{port}", region="us-east-1", max_attempts=1, connect_timeout=1
    )
    async with storage:
        with pytest.raises(StorageUnreachable, match="BLOBSTORE_S3_ENDPOINT_URL"):
            await storage.check()


async def test_check_without_credentials(
    endpoint: S3Endpoint, bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """check with no AWS credentials anywhere raises ConfigurationError mentioning AWS credentials."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    # A fresh session: the shared one has already resolved credentials.
    async with S3Storage(bucket, endpoint_url=endpoint.url, region=endpoint.region) as storage:
        with pytest.raises(ConfigurationError, match="AWS credentials"):
            await storage.check()


async def test_check_invalid_region() -> None:
    """A malformed region is a ConfigurationError naming BLOBSTORE_S3_REGION."""
    async with S3Storage("bucket", endpoint_url=None, region="us east 1") as storage:
        with pytest.raises(ConfigurationError, match="BLOBSTORE_S3_REGION"):
            await storage.check()


def test_bad_endpoint_url_is_a_configuration_error() -> None:
    """An endpoint that is not an http(s) URL is rejected naming BLOBSTORE_S3_ENDPOINT_URL."""
    with pytest.raises(ConfigurationError, match="BLOBSTORE_S3_ENDPOINT_URL"):
        S3Storage("bucket", endpoint_url="minio:9000", region="us-east-1")


@pytest.mark.parametrize(
    ("url", "bucket", "prefix"),
    [("s3://b1", "b1", ""), ("s3://b1/", "b1", ""), ("s3://b1/a/b/", "b1", "a/b")],
)
def test_s3_urls(url: str, bucket: str, prefix: str) -> None:
    """s3://bucket[/prefix] opens S3Storage on that bucket and prefix."""
    storage = open_storage_from_url(url, endpoint_url=None, region="eu-west-1")
    assert isinstance(storage, S3Storage)
    assert (storage.bucket, storage.prefix) == (bucket, prefix)


@pytest.mark.parametrize("url", ["s3://", "s3:///prefix", "s3://b/a//b", "s3://b/../x"])
def test_bad_s3_urls(url: str) -> None:
    """An s3 URL without a bucket or with a bad prefix names BLOBSTORE_STORAGE_URL."""
    with pytest.raises(ConfigurationError, match="BLOBSTORE_STORAGE_URL"):
        open_storage_from_url(url, endpoint_url=None, region="us-east-1")
