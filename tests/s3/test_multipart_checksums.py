"""Additional checksums of S3 multipart uploads through a real S3 server, driven by boto3, on SQLite and
PostgreSQL: each part's verified and returned (UploadPart, ListParts), those a completion lists checked against
the parts, and the object's COMPOSITE checksum answered and recorded for ``x-amz-checksum-mode: ENABLED``."""

from __future__ import annotations

import base64
import os
from typing import Any

import pytest
from botocore.exceptions import ClientError

from blobstore import BlobStore
from blobstore.model import checksums
from tests.s3.test_multipart import MIB, client, error_of
from tests.support.stores import StoreFactory


@pytest.fixture(params=["sqlite-local", "postgres-local"])
async def store(open_store: StoreFactory, request: pytest.FixtureRequest) -> BlobStore:
    """An empty store on SQLite and on PostgreSQL, each over a local directory, on the test's clock."""
    return await open_store(str(request.param))


def checksum(algorithm: str, data: bytes) -> str:
    """The base64 checksum S3 gives ``data``."""
    hasher = checksums.hasher(algorithm.lower())
    hasher.update(data)
    return checksums.encoded(hasher)


def composite(algorithm: str, *parts: bytes) -> str:
    """The COMPOSITE checksum of an object completed from ``parts``."""
    combined = b"".join(base64.b64decode(checksum(algorithm, part)) for part in parts)
    return f"{checksum(algorithm, combined)}-{len(parts)}"


@pytest.mark.parametrize("algorithm", ["CRC32", "SHA256"])
async def test_part_checksums_are_returned_and_the_object_gets_the_composite(
    store: BlobStore, url: str, algorithm: str
) -> None:
    """An upload begun with ChecksumAlgorithm: UploadPart and ListParts answer each part's checksum, the
    completion (which lists them) answers the COMPOSITE checksum, and HEAD and GET return it when asked."""
    s3 = await client(store, url)
    s3.create_bucket(Bucket="sums")
    field = f"Checksum{algorithm}"
    created = s3.create_multipart_upload(Bucket="sums", Key="k", ChecksumAlgorithm=algorithm)
    assert created["ChecksumAlgorithm"] == algorithm
    upload = {"Bucket": "sums", "Key": "k", "UploadId": created["UploadId"]}
    bodies = [os.urandom(5 * MIB), b"tail"]
    listed = []
    for number, body in enumerate(bodies, 1):
        part = s3.upload_part(**upload, PartNumber=number, Body=body, ChecksumAlgorithm=algorithm)
        assert part[field] == checksum(algorithm, body)
        listed.append({"PartNumber": number, "ETag": part["ETag"], field: part[field]})
    parts = s3.list_parts(**upload)
    assert [part[field] for part in parts["Parts"]] == [checksum(algorithm, body) for body in bodies]
    assert parts["ChecksumAlgorithm"] == algorithm
    done = s3.complete_multipart_upload(**upload, MultipartUpload={"Parts": listed})
    assert (done[field], done["ChecksumType"]) == (composite(algorithm, *bodies), "COMPOSITE")
    head = s3.head_object(Bucket="sums", Key="k", ChecksumMode="ENABLED")
    assert (head[field], head["ChecksumType"]) == (done[field], "COMPOSITE")
    got = s3.get_object(Bucket="sums", Key="k", ChecksumMode="ENABLED")
    assert (got[field], got["Body"].read()) == (done[field], b"".join(bodies))
    again = s3.complete_multipart_upload(**upload, MultipartUpload={"Parts": listed})
    assert (again[field], again["ETag"]) == (done[field], done["ETag"])


async def test_a_part_whose_checksum_does_not_match_is_bad_digest(store: BlobStore, url: str) -> None:
    """A part sent with a wrong checksum is 400 BadDigest: no part is staged, nothing is charged."""
    s3 = await client(store, url)
    s3.create_bucket(Bucket="bad")
    upload_id = s3.create_multipart_upload(Bucket="bad", Key="k", ChecksumAlgorithm="CRC32")["UploadId"]

    def corrupt(request: Any, **_: Any) -> None:
        request.headers.replace_header("x-amz-checksum-crc32", base64.b64encode(bytes(4)).decode())

    s3.meta.events.register("before-sign.s3.UploadPart", corrupt)
    with pytest.raises(ClientError) as raised:
        s3.upload_part(Bucket="bad", Key="k", UploadId=upload_id, PartNumber=1, Body=b"part", ChecksumAlgorithm="CRC32")
    assert raised.value.response["Error"]["Code"] == "BadDigest"
    assert "Parts" not in s3.list_parts(Bucket="bad", Key="k", UploadId=upload_id)
    assert (await store.quota("acme")).used_bytes == 0


async def test_a_completion_listing_another_checksum_is_invalid_part(store: BlobStore, url: str) -> None:
    """A completion naming a part's checksum other than the one it was uploaded with, or of another algorithm, is
    400 InvalidPart and completes nothing."""
    s3 = await client(store, url)
    s3.create_bucket(Bucket="listed")
    created = s3.create_multipart_upload(Bucket="listed", Key="k", ChecksumAlgorithm="SHA256")
    upload = {"Bucket": "listed", "Key": "k", "UploadId": created["UploadId"]}
    etag = s3.upload_part(**upload, PartNumber=1, Body=b"part", ChecksumAlgorithm="SHA256")["ETag"]
    for wrong in ({"ChecksumSHA256": checksum("SHA256", b"other")}, {"ChecksumCRC32": checksum("CRC32", b"part")}):
        parts = {"Parts": [{"PartNumber": 1, "ETag": etag, **wrong}]}
        assert error_of(s3.complete_multipart_upload, **upload, MultipartUpload=parts) == ("InvalidPart", 400)
    assert [part["PartNumber"] for part in s3.list_parts(**upload)["Parts"]] == [1]


async def test_an_upload_without_an_algorithm_verifies_and_echoes_boto3s_default_crc32(
    store: BlobStore, url: str
) -> None:
    """boto3 sends a CRC32 with every part by default: verified and echoed, though the upload, begun without an
    algorithm, records no object checksum."""
    s3 = await client(store, url)
    s3.create_bucket(Bucket="plain")
    upload_id = s3.create_multipart_upload(Bucket="plain", Key="k")["UploadId"]
    upload = {"Bucket": "plain", "Key": "k", "UploadId": upload_id}
    part = s3.upload_part(**upload, PartNumber=1, Body=b"part")
    assert part["ChecksumCRC32"] == checksum("CRC32", b"part")
    s3.complete_multipart_upload(**upload, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    assert "ChecksumCRC32" not in s3.head_object(Bucket="plain", Key="k", ChecksumMode="ENABLED")


async def test_a_completion_checks_the_object_checksum_it_expects(store: BlobStore, url: str) -> None:
    """The ``x-amz-checksum-*`` header of a completion is the object's expected checksum: another value than the
    COMPOSITE one is 400 BadDigest and the upload stays; the right one completes."""
    s3 = await client(store, url)
    s3.create_bucket(Bucket="expected")
    created = s3.create_multipart_upload(Bucket="expected", Key="k", ChecksumAlgorithm="SHA256")
    upload = {"Bucket": "expected", "Key": "k", "UploadId": created["UploadId"]}
    etag = s3.upload_part(**upload, PartNumber=1, Body=b"part", ChecksumAlgorithm="SHA256")["ETag"]
    parts = {"Parts": [{"PartNumber": 1, "ETag": etag}]}
    wrong = composite("SHA256", b"other")
    assert error_of(s3.complete_multipart_upload, **upload, MultipartUpload=parts, ChecksumSHA256=wrong) == (
        "BadDigest",
        400,
    )
    assert [part["PartNumber"] for part in s3.list_parts(**upload)["Parts"]] == [1]
    right = composite("SHA256", b"part")
    done = s3.complete_multipart_upload(**upload, MultipartUpload=parts, ChecksumSHA256=right)
    assert done["ChecksumSHA256"] == right


async def test_upload_part_copy_records_the_parts_checksum(store: BlobStore, url: str) -> None:
    """A part copied from an object gets its checksum of the upload's algorithm like an uploaded one: answered in
    CopyPartResult and in ListParts, and part of the COMPOSITE checksum."""
    s3 = await client(store, url)
    s3.create_bucket(Bucket="copied")
    s3.put_object(Bucket="copied", Key="source", Body=b"0123456789")
    created = s3.create_multipart_upload(Bucket="copied", Key="k", ChecksumAlgorithm="CRC32")
    upload = {"Bucket": "copied", "Key": "k", "UploadId": created["UploadId"]}
    copied = s3.upload_part_copy(**upload, PartNumber=1, CopySource="copied/source", CopySourceRange="bytes=2-5")
    assert copied["CopyPartResult"]["ChecksumCRC32"] == checksum("CRC32", b"2345")
    assert s3.list_parts(**upload)["Parts"][0]["ChecksumCRC32"] == checksum("CRC32", b"2345")
    parts = {"Parts": [{"PartNumber": 1, "ETag": copied["CopyPartResult"]["ETag"]}]}
    done = s3.complete_multipart_upload(**upload, MultipartUpload=parts)
    assert done["ChecksumCRC32"] == composite("CRC32", b"2345")
