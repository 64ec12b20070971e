"""The statement budget of the S3 API's hot requests: what a PutObject and a GetObject send to the database
beyond the store's own put and read (tests/store/test_put_statements.py).

Every S3 request reads its access key; a request on a bucket learns in the same statement whether the caller's
tenant owns that bucket, whether it has a quota and the version it holds under the request's key with its ETag
and checksums (blobstore.auth.access_keys.active): a bucket costs no statement of its own, a put of a tenant
without a quota reads no quota room before its body, and a read needs no lookup of its ETag.
Counted server-side, on every engine of this process, while one boto3 request runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from sqlalchemy import event
from sqlalchemy.engine import Engine

from blobstore import BlobStore
from blobstore.accounting import quotas
from blobstore.auth import access_keys
from tests.store.test_put_statements import UNIQUE_PUT
from tests.support.stores import StoreFactory

#: The access key, with whether its tenant owns the request's bucket: one statement.
AUTHENTICATE = 1
#: The tenant's quota room before the body is read, when it has a quota.
ALLOWANCE = 1
#: PutObject's commit also records the ETag (no checksum is sent here).
ETAG = 1
#: GetObject: the key's reference.
READ = 1


@pytest.fixture
async def store(open_store: StoreFactory) -> BlobStore:
    """An embedded store (SQLite and a local directory)."""
    return await open_store("sqlite-local")


@contextlib.contextmanager
def statements() -> Iterator[list[str]]:
    """The SQL statements any engine of this process sends while the block runs (not the engine's BEGIN)."""
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.lstrip().upper().startswith("BEGIN"):
            sent.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(Engine, "before_cursor_execute", record)


async def _client(store: BlobStore, url: str) -> Any:
    key = await access_keys.create(store.core, "acme")
    return boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=key.info.id,
        aws_secret_access_key=key.secret,
        config=Config(s3={"addressing_style": "path"}, request_checksum_calculation="when_required"),
    )


async def test_a_put_object_reads_its_key_and_bucket_in_one_statement(store: BlobStore, url: str) -> None:
    """PutObject of new bytes by a tenant without a quota: the access key with its bucket, the put, its ETag."""
    s3 = await _client(store, url)
    s3.create_bucket(Bucket="photos")
    s3.put_object(Bucket="photos", Key="warm", Body=b"the tenant's first bytes")
    with statements() as sent:
        s3.put_object(Bucket="photos", Key="new", Body=os.urandom(64))
    assert len(sent) == AUTHENTICATE + UNIQUE_PUT["sqlite"] + ETAG, sent


async def test_a_put_object_of_a_tenant_with_a_quota_reads_its_room_first(store: BlobStore, url: str) -> None:
    """With a quota, PutObject reads the room the quota leaves before the body (and is refused from it alone)."""
    s3 = await _client(store, url)
    s3.create_bucket(Bucket="photos")
    s3.put_object(Bucket="photos", Key="warm", Body=b"the tenant's first bytes")
    await quotas.set_quota(store.core, "acme", max_bytes=1000)
    with statements() as sent:
        s3.put_object(Bucket="photos", Key="new", Body=os.urandom(64))
    assert len(sent) == AUTHENTICATE + ALLOWANCE + UNIQUE_PUT["sqlite"] + ETAG, sent
    with statements() as sent, pytest.raises(ClientError) as refused:
        s3.put_object(Bucket="photos", Key="big", Body=os.urandom(2000))
    assert refused.value.response["Error"]["Code"] == "QuotaExceeded"
    assert len(sent) == AUTHENTICATE + ALLOWANCE, sent


async def test_a_get_object_reads_its_key_bucket_and_facts_in_one_statement(store: BlobStore, url: str) -> None:
    """GetObject and HeadObject (boto3 asks for checksums by default): the access key with its bucket and the
    version under the key with its ETag and checksums, then the reference: no lookup of the ETag of its own."""
    s3 = await _client(store, url)
    s3.create_bucket(Bucket="photos")
    put = s3.put_object(Bucket="photos", Key="k", Body=b"some bytes", ChecksumAlgorithm="CRC32")
    with statements() as sent:
        got = s3.get_object(Bucket="photos", Key="k", ChecksumMode="ENABLED")
        assert got["Body"].read() == b"some bytes"
    assert got["ETag"] == put["ETag"] == '"' + hashlib.md5(b"some bytes").hexdigest() + '"'
    assert got["ChecksumCRC32"] == put["ChecksumCRC32"]
    assert len(sent) == AUTHENTICATE + READ, sent
    with statements() as sent:
        assert s3.head_object(Bucket="photos", Key="k")["ETag"] == put["ETag"]
    assert len(sent) == AUTHENTICATE + READ, sent
    native = await store.tenant("acme").put("photos/native", b"native bytes")
    with statements() as sent:
        assert s3.get_object(Bucket="photos", Key="native")["ETag"] == f'"{native.digest}"'
    assert len(sent) == AUTHENTICATE + READ, sent


async def test_a_missing_bucket_is_no_such_bucket_after_the_same_one_statement(store: BlobStore, url: str) -> None:
    """A bucket the tenant lacks is known from the access key's own statement: NoSuchBucket, nothing else read."""
    s3 = await _client(store, url)
    with statements() as sent, pytest.raises(s3.exceptions.NoSuchBucket):
        s3.get_object(Bucket="absent", Key="k")
    assert len(sent) == AUTHENTICATE, sent
