"""GetObject and HeadObject ``?partNumber=N`` through a real S3 server, driven by boto3, on SQLite and PostgreSQL:
the bytes of part N of an object completed from a multipart upload (206, ``Content-Range``,
``x-amz-mp-parts-count``), the whole of a single PUT as its part 1, 416 InvalidPartNumber past the parts."""

from __future__ import annotations

import os

import pytest

from blobstore import BlobStore
from tests.s3.test_multipart import MIB, begin, client, error_of
from tests.support.stores import StoreFactory


@pytest.fixture(params=["sqlite-local", "postgres-local"])
async def store(open_store: StoreFactory, request: pytest.FixtureRequest) -> BlobStore:
    """An empty store on SQLite and on PostgreSQL, each over a local directory, on the test's clock."""
    return await open_store(str(request.param))


async def test_part_number_reads_one_part_of_a_multipart_object(store: BlobStore, url: str) -> None:
    """Each part of a three-part object is answered alone, as a range of the whole with the object's ETag and
    its part count; HEAD says the same without the bytes; a number past the parts is 416 InvalidPartNumber."""
    s3 = await client(store, url)
    s3.create_bucket(Bucket="parts")
    upload = begin(s3, "parts", "k")
    bodies = [os.urandom(5 * MIB), os.urandom(5 * MIB + 1), b"tail"]
    listed = [
        {"PartNumber": number, "ETag": s3.upload_part(**upload, PartNumber=number, Body=body)["ETag"]}
        for number, body in enumerate(bodies, 1)
    ]
    etag = s3.complete_multipart_upload(**upload, MultipartUpload={"Parts": listed})["ETag"]
    total, start = sum(map(len, bodies)), 0
    for number, body in enumerate(bodies, 1):
        got = s3.get_object(Bucket="parts", Key="k", PartNumber=number)
        head = s3.head_object(Bucket="parts", Key="k", PartNumber=number)
        content_range = f"bytes {start}-{start + len(body) - 1}/{total}"
        for answer in (got, head):
            assert answer["ResponseMetadata"]["HTTPStatusCode"] == 206
            assert (answer["ContentRange"], answer["ContentLength"]) == (content_range, len(body))
            assert (answer["PartsCount"], answer["ETag"]) == (3, etag)
        assert got["Body"].read() == body
        start += len(body)
    assert error_of(s3.get_object, Bucket="parts", Key="k", PartNumber=4) == ("InvalidPartNumber", 416)
    assert error_of(s3.head_object, Bucket="parts", Key="k", PartNumber=4) == ("416", 416)


async def test_part_one_of_a_single_put_is_the_whole_object(store: BlobStore, url: str) -> None:
    """A PUT object is one part: part 1 is all of it, part 2 is 416 InvalidPartNumber; a part number with a
    Range, or out of 1-10,000, is 400."""
    s3 = await client(store, url)
    s3.create_bucket(Bucket="single")
    s3.put_object(Bucket="single", Key="k", Body=b"whole object")
    got = s3.get_object(Bucket="single", Key="k", PartNumber=1)
    assert got["Body"].read() == b"whole object"
    assert got["ContentRange"] == "bytes 0-11/12"
    assert "PartsCount" not in got
    assert error_of(s3.get_object, Bucket="single", Key="k", PartNumber=2) == ("InvalidPartNumber", 416)
    assert error_of(s3.get_object, Bucket="single", Key="k", PartNumber=1, Range="bytes=0-1") == (
        "InvalidRequest",
        400,
    )
    assert error_of(s3.get_object, Bucket="single", Key="k", PartNumber=0)[1] == 400
