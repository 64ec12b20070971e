"""The S3 app in-process, with the store's clock in the test's hands: skew, anonymous requests, 501s."""

from __future__ import annotations

from datetime import timedelta
from xml.etree import ElementTree as ET

import boto3
import httpx
import pytest
from botocore.exceptions import ClientError

from blobstore import BlobStore
from blobstore.auth import access_keys
from tests.s3.test_sigv4 import signed_with_date
from tests.support.stores import FakeClock, StoreFactory


@pytest.fixture
async def store(open_store: StoreFactory) -> BlobStore:
    """An embedded store (SQLite and a local directory) on the test's clock."""
    return await open_store("sqlite-local")


def _error(response: httpx.Response) -> dict[str, str]:
    return {child.tag: child.text or "" for child in ET.fromstring(response.content)}


async def test_a_request_more_than_fifteen_minutes_off_is_refused(store: BlobStore, clock: FakeClock, url: str) -> None:
    """With the server's clock 16 minutes ahead, a fresh boto3 request is RequestTimeTooSkewed."""
    key = await access_keys.create(store.core, "acme")
    s3 = boto3.client(
        "s3", endpoint_url=url, aws_access_key_id=key.info.id, aws_secret_access_key=key.secret, region_name="us-east-1"
    )
    s3.list_buckets()
    clock.advance(16 * 60)
    with pytest.raises(ClientError) as raised:
        s3.list_buckets()
    assert raised.value.response["Error"]["Code"] == "RequestTimeTooSkewed"


async def test_a_request_signed_with_a_date_header_is_served_within_the_skew(
    store: BlobStore, clock: FakeClock, url: str
) -> None:
    """SigV4 signed with ``Date`` (no X-Amz-Date), as some clients and ceph/s3-tests sign: ListBuckets answers;
    the same request 16 minutes off the server's clock is RequestTimeTooSkewed."""
    key = await access_keys.create(store.core, "acme")
    host = url.removeprefix("http://")
    moment = clock().replace(microsecond=0)
    stale = signed_with_date("GET", host, "/", moment - timedelta(minutes=16), key.info.id, key.secret)
    async with httpx.AsyncClient(base_url=url) as client:
        listed = await client.get("/", headers=signed_with_date("GET", host, "/", moment, key.info.id, key.secret))
        refused = await client.get("/", headers=stale)
    assert listed.status_code == 200, listed.text
    assert ET.fromstring(listed.content).tag.endswith("ListAllMyBucketsResult")
    assert (refused.status_code, _error(refused)["Code"]) == (403, "RequestTimeTooSkewed")


def test_an_anonymous_request_is_access_denied_in_s3_xml(url: str) -> None:
    """No signature at all: 403 AccessDenied, an Error document with its RequestId, also in x-amz-request-id."""
    response = httpx.get(f"{url}/some-bucket/key")
    assert response.status_code == 403
    error = _error(response)
    assert error["Code"] == "AccessDenied"
    assert error["Resource"] == "/some-bucket/key"
    assert error["RequestId"] == response.headers["x-amz-request-id"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/bucket/key?restore"),
        ("GET", "/bucket/key?attributes"),
        ("GET", "/bucket?policy"),
        ("PUT", "/bucket?acl"),
        ("GET", "/bucket?policy&versions"),
        ("PUT", "/bucket/key?tagging"),
    ],
)
def test_operations_not_implemented_answer_501_before_authentication(url: str, method: str, path: str) -> None:
    """Restore, object attributes, versions and other subresources answer 501 NotImplemented as S3 XML."""
    response = httpx.request(method, f"{url}{path}")
    assert response.status_code == 501
    assert _error(response)["Code"] == "NotImplemented"
