"""PutObject records the object's ETag (its MD5) and its verified ``x-amz-checksum-*`` in the transaction that binds
its key: a fault after any of the request's database steps never leaves the key bound without them."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from blobstore import BlobStore, buckets
from blobstore.auth import access_keys
from blobstore.db.engine import Database


class _DatabaseSteps:
    """Counts the database's transactions and driver calls once armed, and fails right after the ``fail_after``-th
    one has run (committed, for a transaction): the process as good as died there."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.fail_after: int | None = None
        self.count = 0
        for name in ("transaction", "on_driver", "read"):
            monkeypatch.setattr(Database, name, self._counted(getattr(Database, name)))

    def arm(self, fail_after: int) -> None:
        self.fail_after, self.count = fail_after, 0

    def disarm(self) -> None:
        self.fail_after = None

    def _counted(self, real: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def step(database: Database, work: Any) -> Any:
            result = await real(database, work)
            if self.fail_after is not None:
                self.count += 1
                if self.count == self.fail_after:
                    raise RuntimeError(f"injected fault after database step {self.count}")
            return result

        return step


@pytest.mark.parametrize("held", [False, True], ids=["new-bytes", "bytes-the-tenant-holds-natively"])
async def test_a_fault_after_any_step_of_a_put_never_leaves_a_key_without_its_etag(
    store: BlobStore, url: str, monkeypatch: pytest.MonkeyPatch, held: bool
) -> None:
    """PutObject with an ``x-amz-checksum-sha256``, failed after its first, second, ... database step until it
    completes: whenever the key is bound, HeadObject answers its MD5 ETag and the checksum it was verified against
    (new bytes, and a dedup hit on bytes the tenant put through the native API, which have no MD5 yet)."""
    key = await access_keys.create(store.core, "acme")
    await buckets.create(store.core, "acme", "bucket")
    s3 = boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id=key.info.id,
        aws_secret_access_key=key.secret,
        region_name="us-east-1",
        config=Config(retries={"total_max_attempts": 1}),
    )
    steps = _DatabaseSteps(monkeypatch)
    completed = False
    for fail_after in range(1, 40):
        body = f"the bytes of put {fail_after}".encode()
        if held:
            await store.tenant("acme").put(f"native/{fail_after}", body)
        sha256 = base64.b64encode(hashlib.sha256(body).digest()).decode()
        steps.arm(fail_after)
        try:
            s3.put_object(Bucket="bucket", Key=f"k{fail_after}", Body=body, ChecksumSHA256=sha256)
            status = 200
        except ClientError as error:
            status = error.response["ResponseMetadata"]["HTTPStatusCode"]
        completed = steps.count < fail_after
        steps.disarm()
        assert status == (200 if completed else 500)
        try:
            head = s3.head_object(Bucket="bucket", Key=f"k{fail_after}", ChecksumMode="ENABLED")
        except ClientError as error:
            head = error.response
        if head["ResponseMetadata"]["HTTPStatusCode"] != 404:
            assert head["ETag"] == f'"{hashlib.md5(body).hexdigest()}"', f"fault after step {fail_after}"
            assert head["ChecksumSHA256"] == sha256, f"fault after step {fail_after}"
        if completed:
            break
    assert completed, "the put never ran to the end without a fault"
