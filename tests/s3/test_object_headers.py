"""The response headers an object stores (Content-Disposition, Content-Encoding, Content-Language, Cache-Control,
Expires) through a real S3 server, driven by boto3, on SQLite and PostgreSQL: stored by PutObject, CopyObject and
CreateMultipartUpload, returned by GetObject and HeadObject, overridden by the ``response-*`` query parameters."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from blobstore import BlobStore
from blobstore.auth import access_keys
from tests.support.stores import StoreFactory

#: boto3's PutObject parameters for the five headers, and the response headers they come back as.
STORED = {
    "CacheControl": ("cache-control", "max-age=60, private"),
    "ContentDisposition": ("content-disposition", 'attachment; filename="report.pdf"'),
    "ContentEncoding": ("content-encoding", "gzip"),
    "ContentLanguage": ("content-language", "fr-CA"),
    "Expires": ("expires", "Wed, 21 Oct 2037 07:28:00 GMT"),
}
PUT_ARGUMENTS = {parameter: value for parameter, (_, value) in STORED.items()}
ANSWERED = dict(STORED.values())


@pytest.fixture(params=["sqlite-local", "postgres-local"])
async def store(open_store: StoreFactory, request: pytest.FixtureRequest) -> BlobStore:
    """An empty store on SQLite and on PostgreSQL, each over a local directory, on the test's clock."""
    return await open_store(str(request.param))


async def client(store: BlobStore, url: str) -> Any:
    """boto3's S3 client with its defaults, signed with a new access key of tenant acme, and bucket ``bkt``."""
    key = await access_keys.create(store.core, "acme")
    s3 = boto3.client(
        "s3", endpoint_url=url, aws_access_key_id=key.info.id, aws_secret_access_key=key.secret, region_name="us-east-1"
    )
    s3.create_bucket(Bucket="bkt")
    return s3


def stored(response: dict[str, Any]) -> dict[str, str]:
    """The five stored headers a GetObject or HeadObject response carries."""
    headers = response["ResponseMetadata"]["HTTPHeaders"]
    return {name: headers[name] for name in ANSWERED if name in headers}


async def test_put_object_stores_the_headers_and_get_and_head_return_them(store: BlobStore, url: str) -> None:
    """PutObject's five headers come back on GET and HEAD; putting the key again without them drops them."""
    s3 = await client(store, url)
    s3.put_object(Bucket="bkt", Key="k", Body=b"bytes", ContentType="application/pdf", **PUT_ARGUMENTS)
    got = s3.get_object(Bucket="bkt", Key="k")
    assert got["Body"].read() == b"bytes"
    assert stored(got) == ANSWERED
    assert got["ContentType"] == "application/pdf"
    assert stored(s3.head_object(Bucket="bkt", Key="k")) == ANSWERED
    assert (await store.tenant("acme").stat("bkt/k")).headers == ANSWERED
    s3.put_object(Bucket="bkt", Key="k", Body=b"bytes")
    assert stored(s3.head_object(Bucket="bkt", Key="k")) == {}


async def test_aws_chunked_is_framing_and_not_stored_as_the_content_encoding(store: BlobStore, url: str) -> None:
    """``aws-chunked`` in Content-Encoding frames the request, so only the object's own codings are stored."""
    s3 = await client(store, url)
    s3.put_object(Bucket="bkt", Key="gz", Body=b"x", ContentEncoding="gzip, aws-chunked")
    s3.put_object(Bucket="bkt", Key="plain", Body=b"x", ContentEncoding="aws-chunked")
    assert stored(s3.head_object(Bucket="bkt", Key="gz")) == {"content-encoding": "gzip"}
    assert stored(s3.head_object(Bucket="bkt", Key="plain")) == {}


async def test_copy_object_keeps_the_sources_headers_or_takes_the_requests(store: BlobStore, url: str) -> None:
    """COPY (the default) keeps the source's headers; REPLACE stores the request's, none if it has none."""
    s3 = await client(store, url)
    s3.put_object(Bucket="bkt", Key="source", Body=b"bytes", **PUT_ARGUMENTS)
    s3.copy_object(Bucket="bkt", Key="kept", CopySource="bkt/source")
    assert stored(s3.head_object(Bucket="bkt", Key="kept")) == ANSWERED
    s3.copy_object(
        Bucket="bkt", Key="replaced", CopySource="bkt/source", MetadataDirective="REPLACE", ContentLanguage="de"
    )
    assert stored(s3.head_object(Bucket="bkt", Key="replaced")) == {"content-language": "de"}
    s3.copy_object(Bucket="bkt", Key="bare", CopySource="bkt/source", MetadataDirective="REPLACE")
    assert stored(s3.head_object(Bucket="bkt", Key="bare")) == {}


async def test_create_multipart_uploads_headers_become_the_objects(store: BlobStore, url: str) -> None:
    """The headers given when the upload begins are the completed object's."""
    s3 = await client(store, url)
    upload = s3.create_multipart_upload(Bucket="bkt", Key="big", **PUT_ARGUMENTS)["UploadId"]
    etag = s3.upload_part(Bucket="bkt", Key="big", UploadId=upload, PartNumber=1, Body=b"only part")["ETag"]
    s3.complete_multipart_upload(
        Bucket="bkt", Key="big", UploadId=upload, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]}
    )
    assert stored(s3.get_object(Bucket="bkt", Key="big")) == ANSWERED


async def test_response_parameters_override_the_answered_headers(store: BlobStore, url: str) -> None:
    """GetObject's and HeadObject's ``response-*`` parameters replace the stored (or default) header they name,
    and leave the others as stored."""
    s3 = await client(store, url)
    s3.put_object(Bucket="bkt", Key="k", Body=b"bytes", ContentType="text/plain", **PUT_ARGUMENTS)
    overrides = {
        "ResponseContentType": "application/json",
        "ResponseContentDisposition": "inline",
        "ResponseCacheControl": "no-store",
        "ResponseContentLanguage": "en",
        "ResponseContentEncoding": "identity",
        "ResponseExpires": "Thu, 01 Jan 2037 00:00:00 GMT",
    }
    wanted = {
        "cache-control": "no-store",
        "content-disposition": "inline",
        "content-encoding": "identity",
        "content-language": "en",
        "expires": "Thu, 01 Jan 2037 00:00:00 GMT",
    }
    for call in (s3.get_object, s3.head_object):
        response = call(Bucket="bkt", Key="k", **overrides)
        assert stored(response) == wanted
        assert response["ContentType"] == "application/json"
    partly = s3.get_object(Bucket="bkt", Key="k", ResponseContentLanguage="en")
    assert stored(partly) == ANSWERED | {"content-language": "en"}
    assert partly["ContentType"] == "text/plain"
