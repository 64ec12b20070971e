"""An S3 endpoint for tests: moto's in-process server, a MinIO container, or a real endpoint.

Use :func:`s3_endpoint` from a session fixture; it picks, in order:

1. ``BLOBSTORE_TEST_S3_ENDPOINT`` (a real S3 or MinIO; credentials from the AWS env vars),
2. a MinIO container when ``BLOBSTORE_TEST_USE_DOCKER=1``,
3. moto's standalone server on a free local port, with dummy credentials.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass

import aioboto3
import pytest
from aiobotocore.config import AioConfig

REGION = "us-east-1"
MINIO_IMAGE = "minio/minio:RELEASE.2025-04-22T22-12-26Z"


@dataclass(frozen=True)
class S3Endpoint:
    """Where the test S3 server listens; its credentials are in the AWS env vars while it runs."""

    url: str
    region: str = REGION


def s3_endpoint_from_env() -> str | None:
    """Return ``BLOBSTORE_TEST_S3_ENDPOINT`` (a real S3/MinIO to test against), or None."""
    return os.environ.get("BLOBSTORE_TEST_S3_ENDPOINT") or None


@contextmanager
def aws_credentials(access_key: str = "testing", secret_key: str = "testing") -> Iterator[None]:
    """Set the AWS env vars to these credentials (dummy ones by default) and restore them after."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ACCESS_KEY_ID", access_key)
        env.setenv("AWS_SECRET_ACCESS_KEY", secret_key)
        env.setenv("AWS_DEFAULT_REGION", REGION)
        for name in ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE"):
            env.delenv(name, raising=False)
        yield


@contextmanager
def moto_server() -> Iterator[str]:
    """Run moto's S3 server on 127.0.0.1 at a free port; yield its endpoint URL."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one access-log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@contextmanager
def minio_container() -> Iterator[str]:
    """Run a MinIO container (needs Docker); yield its endpoint URL with its credentials set."""
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import HttpWaitStrategy

    user, password = "blobstore", "blobstore-secret"
    container = (
        DockerContainer(MINIO_IMAGE)
        .with_exposed_ports(9000)
        .with_env("MINIO_ROOT_USER", user)
        .with_env("MINIO_ROOT_PASSWORD", password)
        .with_command("server /data")
        .waiting_for(HttpWaitStrategy(9000, "/minio/health/live"))
    )
    with container, aws_credentials(user, password):
        yield f"http://{container.get_container_host_ip()}:{container.get_exposed_port(9000)}"


@contextmanager
def s3_endpoint() -> Iterator[S3Endpoint]:
    """Yield the endpoint the S3 tests use (see the module docstring for the choice)."""
    if url := s3_endpoint_from_env():
        yield S3Endpoint(url, os.environ.get("AWS_DEFAULT_REGION", REGION))
    elif os.environ.get("BLOBSTORE_TEST_USE_DOCKER") == "1":
        with minio_container() as url:
            yield S3Endpoint(url)
    else:
        with aws_credentials(), moto_server() as url:
            yield S3Endpoint(url)


def unique_bucket_name() -> str:
    """Return a fresh, valid bucket name."""
    return f"blobstore-test-{uuid.uuid4().hex[:20]}"


@asynccontextmanager
async def temporary_bucket(endpoint: S3Endpoint, session: aioboto3.Session | None = None) -> AsyncIterator[str]:
    """Create a uniquely named bucket; on exit abort its uploads, delete its objects and the bucket."""
    name = unique_bucket_name()
    session = session or aioboto3.Session()
    config = AioConfig(s3={"addressing_style": "path"})
    async with session.client("s3", endpoint_url=endpoint.url, region_name=endpoint.region, config=config) as s3:
        location = {} if endpoint.region == REGION else {"LocationConstraint": endpoint.region}
        await s3.create_bucket(Bucket=name, **({"CreateBucketConfiguration": location} if location else {}))
        try:
            yield name
        finally:
            async for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=name):
                for upload in page.get("Uploads", []):
                    await s3.abort_multipart_upload(Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"])
            async for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
                if objects := [{"Key": item["Key"]} for item in page.get("Contents", [])]:
                    await s3.delete_objects(Bucket=name, Delete={"Objects": objects, "Quiet": True})
            await s3.delete_bucket(Bucket=name)
