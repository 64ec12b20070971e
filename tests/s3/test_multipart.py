"""S3 multipart uploads through a real S3 server over HTTP, driven by boto3 with its default configuration, on
SQLite and PostgreSQL: every operation, S3's rules and errors, tenant isolation, quota and dedup."""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from blobstore import BlobStore
from blobstore.auth import access_keys
from blobstore.db.catalog import blob_count
from tests.support.stores import FakeClock, StoreFactory

MIB = 2**20


@pytest.fixture(params=["sqlite-local", "postgres-local"])
async def store(open_store: StoreFactory, request: pytest.FixtureRequest) -> BlobStore:
    """An empty store on SQLite and on PostgreSQL, each over a local directory, on the test's clock."""
    return await open_store(str(request.param))


async def client(store: BlobStore, url: str, tenant: str = "acme") -> Any:
    """boto3's S3 client with its defaults, signed with a new access key of ``tenant``."""
    key = await access_keys.create(store.core, tenant)
    return boto3.client(
        "s3", endpoint_url=url, aws_access_key_id=key.info.id, aws_secret_access_key=key.secret, region_name="us-east-1"
    )


def error_of(call: Any, **kwargs: Any) -> tuple[str, int]:
    """The S3 error code and HTTP status ``call`` fails with."""
    with pytest.raises(ClientError) as raised:
        call(**kwargs)
    response = raised.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def begin(s3: Any, bucket: str, key: str) -> dict[str, str]:
    """A new upload of ``key`` in ``bucket``, as the Bucket, Key and UploadId the other operations take."""
    return {"Bucket": bucket, "Key": key, "UploadId": s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]}


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def multipart_etag(*parts: bytes) -> str:
    """The ETag S3 gives an object completed from ``parts``."""
    return f'"{md5(b"".join(bytes.fromhex(md5(part)) for part in parts))}-{len(parts)}"'


async def test_upload_file_and_download_file_of_64_mib_round_trip(store: BlobStore, url: str, tmp_path: Path) -> None:
    """boto3's upload_file sends 64 MiB as 8 parts of 8 MiB from s3transfer's threads; download_file reads back the
    same bytes; the object's ETag is the multipart one; the parts are released (usage is the object's) and fsck
    finds nothing wrong."""
    s3 = await client(store, url)
    s3.create_bucket(Bucket="big")
    source, target = tmp_path / "source", tmp_path / "target"
    data = os.urandom(64 * MIB)
    source.write_bytes(data)
    s3.upload_file(str(source), "big", "file.bin")
    s3.download_file("big", "file.bin", str(target))
    assert hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(data).digest()
    chunks = [data[i : i + 8 * MIB] for i in range(0, len(data), 8 * MIB)]
    assert s3.head_object(Bucket="big", Key="file.bin")["ETag"] == multipart_etag(*chunks)
    assert s3.list_multipart_uploads(Bucket="big").get("Uploads", []) == []
    assert (await store.quota("acme")).used_bytes == len(data)
    assert (await store.fsck(read_data=True)).ok


async def test_parts_arrive_out_of_order_and_a_part_uploaded_again_replaces_it(store: BlobStore, url: str) -> None:
    """Parts uploaded 3, 1, 2 and part 1 again with other bytes: ListParts shows the latest of each by number, and
    the object is the listed parts in order, with the type and metadata given at create."""
    s3 = await client(store, url)
    s3.create_bucket(Bucket="order")
    created = s3.create_multipart_upload(Bucket="order", Key="k", ContentType="text/csv", Metadata={"a": "b"})
    upload = {"Bucket": "order", "Key": "k", "UploadId": created["UploadId"]}
    first, second, third = os.urandom(5 * MIB), os.urandom(5 * MIB), b"tail"
    etags = {3: s3.upload_part(**upload, PartNumber=3, Body=third)["ETag"]}
    s3.upload_part(**upload, PartNumber=1, Body=os.urandom(5 * MIB))
    etags[2] = s3.upload_part(**upload, PartNumber=2, Body=second)["ETag"]
    etags[1] = s3.upload_part(**upload, PartNumber=1, Body=first)["ETag"]
    assert etags == {1: f'"{md5(first)}"', 2: f'"{md5(second)}"', 3: f'"{md5(third)}"'}
    listed = s3.list_parts(**upload)["Parts"]
    assert [(part["PartNumber"], part["ETag"], part["Size"]) for part in listed] == [
        (1, etags[1], 5 * MIB),
        (2, etags[2], 5 * MIB),
        (3, etags[3], 4),
    ]
    parts = [{"PartNumber": n, "ETag": etags[n]} for n in (1, 2, 3)]
    completed = s3.complete_multipart_upload(**upload, MultipartUpload={"Parts": parts})
    assert completed["ETag"] == multipart_etag(first, second, third)
    got = s3.get_object(Bucket="order", Key="k")
    assert got["Body"].read() == first + second + third
    assert (got["ContentType"], got["Metadata"]) == ("text/csv", {"a": "b"})
    assert (await store.quota("acme")).used_bytes == 10 * MIB + 4
    assert (await store.fsck(read_data=True)).ok


async def test_list_parts_and_list_multipart_uploads_page(store: BlobStore, url: str) -> None:
    """ListParts pages by part-number-marker / max-parts; ListMultipartUploads by key-marker / upload-id-marker /
    max-uploads, filtered by prefix (boto3's paginators drive both)."""
    s3 = await client(store, url)
    s3.create_bucket(Bucket="pages")
    ids = {key: s3.create_multipart_upload(Bucket="pages", Key=key)["UploadId"] for key in ("a/1", "a/2", "a/3", "b")}
    upload = {"Bucket": "pages", "Key": "a/1", "UploadId": ids["a/1"]}
    for number in (5, 1, 3, 2, 4):
        s3.upload_part(**upload, PartNumber=number, Body=str(number).encode())
    pages = list(s3.get_paginator("list_parts").paginate(**upload, PaginationConfig={"PageSize": 2}))
    assert [[part["PartNumber"] for part in page["Parts"]] for page in pages] == [[1, 2], [3, 4], [5]]
    assert s3.list_parts(**upload, PartNumberMarker=4)["Parts"][0]["PartNumber"] == 5
    uploads = s3.get_paginator("list_multipart_uploads").paginate(
        Bucket="pages", Prefix="a/", PaginationConfig={"PageSize": 2}
    )
    assert [(u["Key"], u["UploadId"]) for page in uploads for u in page.get("Uploads", [])] == [
        (key, ids[key]) for key in ("a/1", "a/2", "a/3")
    ]
    after = s3.list_multipart_uploads(Bucket="pages", KeyMarker="a/2")
    assert [u["Key"] for u in after["Uploads"]] == ["a/3", "b"]


async def test_complete_refuses_bad_part_lists_and_changes_nothing(store: BlobStore, url: str) -> None:
    """EntityTooSmall (a part but the last under 5 MiB), InvalidPart (a wrong ETag, a part never uploaded),
    InvalidPartOrder, MalformedXML; a part number out of range is InvalidArgument. The upload stays as it was."""
    s3 = await client(store, url)
    s3.create_bucket(Bucket="rules")
    upload = begin(s3, "rules", "k")
    small = s3.upload_part(**upload, PartNumber=1, Body=b"small")["ETag"]
    big = s3.upload_part(**upload, PartNumber=2, Body=b"x" * (5 * MIB))["ETag"]
    tail = s3.upload_part(**upload, PartNumber=3, Body=b"tail")["ETag"]

    def complete(*parts: tuple[int, str]) -> tuple[str, int]:
        listed = [{"PartNumber": n, "ETag": etag} for n, etag in parts]
        return error_of(s3.complete_multipart_upload, **upload, MultipartUpload={"Parts": listed})

    assert complete((1, small), (2, big)) == ("EntityTooSmall", 400)
    assert complete((2, small), (3, tail)) == ("InvalidPart", 400)
    assert complete((2, big), (4, tail)) == ("InvalidPart", 400)
    assert complete((3, tail), (2, big)) == ("InvalidPartOrder", 400)
    assert complete((2, big), (2, big)) == ("InvalidPartOrder", 400)
    assert error_of(s3.upload_part, **upload, PartNumber=0, Body=b"x") == ("InvalidArgument", 400)
    assert error_of(s3.upload_part, **upload, PartNumber=10_001, Body=b"x") == ("InvalidArgument", 400)
    assert [part["PartNumber"] for part in s3.list_parts(**upload)["Parts"]] == [1, 2, 3]
    assert error_of(s3.head_object, Bucket="rules", Key="k") == ("404", 404)
    completed = s3.complete_multipart_upload(
        **upload, MultipartUpload={"Parts": [{"PartNumber": 2, "ETag": big}, {"PartNumber": 3, "ETag": tail}]}
    )
    assert completed["ETag"] == multipart_etag(b"x" * (5 * MIB), b"tail")
    assert s3.get_object(Bucket="rules", Key="k")["Body"].read() == b"x" * (5 * MIB) + b"tail"
    assert (await store.quota("acme")).used_bytes == 5 * MIB + 4  # part 1, not listed, was discarded


async def test_an_ended_or_unknown_upload_is_no_such_upload(store: BlobStore, url: str) -> None:
    """After Complete and the key written again, after Abort, for an id never given, and for a live upload's id
    under another key: every operation answers 404 NoSuchUpload."""
    s3 = await client(store, url)
    s3.create_bucket(Bucket="ended")
    done = begin(s3, "ended", "k")
    etag = s3.upload_part(**done, PartNumber=1, Body=b"once")["ETag"]
    s3.complete_multipart_upload(**done, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    s3.put_object(Bucket="ended", Key="k", Body=b"once")  # the same bytes, but no longer the upload's object
    aborted = begin(s3, "ended", "a")
    s3.abort_multipart_upload(**aborted)
    never = {"Bucket": "ended", "Key": "k", "UploadId": "no-such-upload-id"}
    for upload in (done, aborted, never):
        assert_no_such_upload(s3, upload)
    live = s3.create_multipart_upload(Bucket="ended", Key="live")["UploadId"]
    assert_no_such_upload(s3, {"Bucket": "ended", "Key": "not-live", "UploadId": live})


async def test_a_repeated_completion_answers_the_completed_object_again(store: BlobStore, url: str) -> None:
    """A client's retry of a completion that succeeded (its answer lost) gets 200 and the same result, conditions
    included, as long as the key holds the object the upload made; the upload is otherwise ended: no parts, not
    listed. Another part list, or the key deleted or written again, is NoSuchUpload."""
    s3 = await client(store, url)
    s3.create_bucket(Bucket="again")
    upload = begin(s3, "again", "k")
    first, tail = b"a" * (5 * MIB), b"tail"
    etags = [s3.upload_part(**upload, PartNumber=n, Body=body)["ETag"] for n, body in ((1, first), (2, tail))]
    parts = {"Parts": [{"PartNumber": n, "ETag": etag} for n, etag in enumerate(etags, 1)]}
    done = s3.complete_multipart_upload(**upload, MultipartUpload=parts, IfNoneMatch="*")
    assert done["ETag"] == multipart_etag(first, tail)
    for _ in range(2):
        again = s3.complete_multipart_upload(**upload, MultipartUpload=parts, IfNoneMatch="*")
        assert (again["ETag"], again["Key"], again["Bucket"]) == (done["ETag"], "k", "again")
    assert s3.complete_multipart_upload(**upload, MultipartUpload=parts, IfMatch='"other"')["ETag"] == done["ETag"]
    assert (await store.quota("acme")).used_bytes == len(first + tail)
    assert "Uploads" not in s3.list_multipart_uploads(Bucket="again")
    assert error_of(s3.list_parts, **upload) == ("NoSuchUpload", 404)
    assert error_of(s3.upload_part, **upload, PartNumber=1, Body=b"x") == ("NoSuchUpload", 404)
    other = {"Parts": parts["Parts"][:1]}
    assert error_of(s3.complete_multipart_upload, **upload, MultipartUpload=other) == ("NoSuchUpload", 404)
    s3.delete_object(Bucket="again", Key="k")
    assert error_of(s3.complete_multipart_upload, **upload, MultipartUpload=parts) == ("NoSuchUpload", 404)
    assert not await store.tenant("acme").exists("again/k")


def answer(call: Any, upload: dict[str, str], **kwargs: Any) -> tuple[str, int, str]:
    """The S3 error code, HTTP status and message ``call`` on ``upload`` fails with, the upload id in the
    message written ``ID``."""
    with pytest.raises(ClientError) as raised:
        call(**upload, **kwargs)
    response = raised.value.response
    message = response["Error"]["Message"].replace(upload["UploadId"], "ID")
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"], message


def assert_no_such_upload(s3: Any, upload: dict[str, str]) -> None:
    """Every operation on ``upload`` answers 404 NoSuchUpload."""
    parts = {"Parts": [{"PartNumber": 1, "ETag": f'"{md5(b"x")}"'}]}
    assert error_of(s3.upload_part, **upload, PartNumber=1, Body=b"x") == ("NoSuchUpload", 404)
    assert error_of(s3.complete_multipart_upload, **upload, MultipartUpload=parts) == ("NoSuchUpload", 404)
    assert error_of(s3.list_parts, **upload) == ("NoSuchUpload", 404)
    assert error_of(s3.abort_multipart_upload, **upload) == ("NoSuchUpload", 404)


async def test_another_tenants_upload_id_answers_as_a_nonexistent_one(store: BlobStore, url: str) -> None:
    """Tenant globex, with a bucket of the same name, gets exactly NoSuchUpload for acme's upload id on every
    operation, UploadPartCopy included, and does not see it listed; acme's upload is untouched."""
    acme, globex = await client(store, url), await client(store, url, "globex")
    acme.create_bucket(Bucket="shared-name")
    globex.create_bucket(Bucket="shared-name")
    upload = {"Bucket": "shared-name", "Key": "k"}
    upload["UploadId"] = acme.create_multipart_upload(**upload)["UploadId"]
    etag = acme.upload_part(**upload, PartNumber=1, Body=b"acme's")["ETag"]
    globex.put_object(Bucket="shared-name", Key="source", Body=b"globex's")
    never = {**upload, "UploadId": secrets.token_urlsafe(32)}  # shaped as an upload id, never given
    parts = {"Parts": [{"PartNumber": 1, "ETag": etag}]}
    operations: list[tuple[Any, dict[str, Any]]] = [
        (globex.upload_part, {"PartNumber": 1, "Body": b"x"}),
        (globex.upload_part_copy, {"PartNumber": 1, "CopySource": "shared-name/source"}),
        (globex.complete_multipart_upload, {"MultipartUpload": parts}),
        (globex.list_parts, {}),
        (globex.abort_multipart_upload, {}),
    ]
    for operation, arguments in operations:
        theirs = answer(operation, upload, **arguments)
        assert theirs[:2] == ("NoSuchUpload", 404)
        assert theirs == answer(operation, never, **arguments)
    assert globex.list_multipart_uploads(Bucket="shared-name").get("Uploads", []) == []
    assert [part["ETag"] for part in acme.list_parts(**upload)["Parts"]] == [etag]
    assert [u["UploadId"] for u in acme.list_multipart_uploads(Bucket="shared-name")["Uploads"]] == [upload["UploadId"]]


async def test_upload_part_copy_takes_a_range_of_an_object(store: BlobStore, url: str) -> None:
    """UploadPartCopy stages a whole object, or the x-amz-copy-source-range of one, as a part."""
    s3 = await client(store, url)
    s3.create_bucket(Bucket="copies")
    source = os.urandom(6 * MIB)
    s3.put_object(Bucket="copies", Key="source", Body=source)
    upload = begin(s3, "copies", "k")
    whole = s3.upload_part_copy(**upload, PartNumber=1, CopySource={"Bucket": "copies", "Key": "source"})
    ranged = s3.upload_part_copy(**upload, PartNumber=2, CopySource="copies/source", CopySourceRange="bytes=10-19")
    assert whole["CopyPartResult"]["ETag"] == f'"{md5(source)}"'
    assert ranged["CopyPartResult"]["ETag"] == f'"{md5(source[10:20])}"'
    parts = [{"PartNumber": n, "ETag": r["CopyPartResult"]["ETag"]} for n, r in ((1, whole), (2, ranged))]
    s3.complete_multipart_upload(**upload, MultipartUpload={"Parts": parts})
    assert s3.get_object(Bucket="copies", Key="k")["Body"].read() == source + source[10:20]
    missing = error_of(s3.upload_part_copy, **upload | {"Key": "x"}, PartNumber=1, CopySource="copies/nothing")
    assert missing[1] == 404


async def test_upload_part_copy_of_a_range_past_the_source_is_invalid_range(store: BlobStore, url: str) -> None:
    """A copy-source range that ends past the source's last byte is 416 InvalidRange (S3 copies no shorter part
    than was asked); a malformed one is 400 InvalidArgument. No part is staged either way."""
    s3 = await client(store, url)
    s3.create_bucket(Bucket="short-copies")
    s3.put_object(Bucket="short-copies", Key="source", Body=b"12345")
    upload = begin(s3, "short-copies", "k")
    for past in ("bytes=0-21", "bytes=5-5", "bytes=2-5"):
        refused = error_of(
            s3.upload_part_copy, **upload, PartNumber=1, CopySource="short-copies/source", CopySourceRange=past
        )
        assert refused == ("InvalidRange", 416), past
    for malformed in (
        "0-2",
        "bytes=0",
        "bytes=hello-world",
        "bytes=0-bar",
        "bytes=hello-",
        "bytes=0-2,3-5",
        "bytes=3-1",
    ):
        refused = error_of(
            s3.upload_part_copy, **upload, PartNumber=1, CopySource="short-copies/source", CopySourceRange=malformed
        )
        assert refused == ("InvalidArgument", 400), malformed
    assert s3.list_parts(**upload).get("Parts", []) == []
    last = s3.upload_part_copy(**upload, PartNumber=1, CopySource="short-copies/source", CopySourceRange="bytes=0-4")
    assert last["CopyPartResult"]["ETag"] == f'"{md5(b"12345")}"'


async def test_upload_part_copy_evaluates_the_copy_source_conditions(store: BlobStore, url: str) -> None:
    """x-amz-copy-source-if-match and -if-none-match are judged on the source, as CopyObject judges them: 412
    and no part staged when one fails."""
    s3 = await client(store, url)
    s3.create_bucket(Bucket="conditional-copies")
    etag = s3.put_object(Bucket="conditional-copies", Key="source", Body=b"source bytes")["ETag"]
    upload = begin(s3, "conditional-copies", "k")
    source = {"Bucket": "conditional-copies", "Key": "source"}

    refused = error_of(s3.upload_part_copy, **upload, PartNumber=1, CopySource=source, CopySourceIfMatch='"0"')
    assert refused[1] == 412
    refused = error_of(s3.upload_part_copy, **upload, PartNumber=1, CopySource=source, CopySourceIfNoneMatch=etag)
    assert refused[1] == 412
    assert s3.list_parts(**upload).get("Parts", []) == []
    copied = s3.upload_part_copy(**upload, PartNumber=1, CopySource=source, CopySourceIfMatch=etag)
    assert copied["CopyPartResult"]["ETag"] == f'"{md5(b"source bytes")}"'


async def test_complete_honours_if_none_match_and_if_match(store: BlobStore, url: str) -> None:
    """If-None-Match: * over an existing key, If-Match with another ETag: 412 and the upload stays; If-Match with
    the current ETag completes."""
    s3 = await client(store, url)
    s3.create_bucket(Bucket="conditions")
    s3.put_object(Bucket="conditions", Key="k", Body=b"old")
    upload = {"Bucket": "conditions", "Key": "k"}
    upload["UploadId"] = s3.create_multipart_upload(**upload)["UploadId"]
    parts = {"Parts": [{"PartNumber": 1, "ETag": s3.upload_part(**upload, PartNumber=1, Body=b"new")["ETag"]}]}
    refused = error_of(s3.complete_multipart_upload, **upload, MultipartUpload=parts, IfNoneMatch="*")
    assert refused == ("PreconditionFailed", 412)
    wrong = error_of(s3.complete_multipart_upload, **upload, MultipartUpload=parts, IfMatch=f'"{md5(b"other")}"')
    assert wrong == ("PreconditionFailed", 412)
    assert s3.get_object(Bucket="conditions", Key="k")["Body"].read() == b"old"
    s3.complete_multipart_upload(**upload, MultipartUpload=parts, IfMatch=f'"{md5(b"old")}"')
    assert s3.get_object(Bucket="conditions", Key="k")["Body"].read() == b"new"
    fresh = {"Bucket": "conditions", "Key": "fresh"}
    fresh["UploadId"] = s3.create_multipart_upload(**fresh)["UploadId"]
    parts = {"Parts": [{"PartNumber": 1, "ETag": s3.upload_part(**fresh, PartNumber=1, Body=b"first")["ETag"]}]}
    s3.complete_multipart_upload(**fresh, MultipartUpload=parts, IfNoneMatch="*")
    assert s3.get_object(Bucket="conditions", Key="fresh")["Body"].read() == b"first"


async def test_staged_parts_count_toward_the_quota(store: BlobStore, url: str) -> None:
    """A part that does not fit the tenant's byte quota is QuotaExceeded (and not staged); a part replaced frees
    its bytes; abort frees them all."""
    s3 = await client(store, url)
    s3.create_bucket(Bucket="quota")
    await store.set_quota("acme", max_bytes=8 * MIB)
    upload = begin(s3, "quota", "k")
    s3.upload_part(**upload, PartNumber=1, Body=b"a" * (5 * MIB))
    assert (await store.quota("acme")).used_bytes == 5 * MIB
    assert error_of(s3.upload_part, **upload, PartNumber=2, Body=b"b" * (4 * MIB))[0] == "QuotaExceeded"
    assert [part["PartNumber"] for part in s3.list_parts(**upload)["Parts"]] == [1]
    s3.upload_part(**upload, PartNumber=1, Body=b"c" * (7 * MIB))  # replaces 5 MiB by 7: fits
    assert (await store.quota("acme")).used_bytes == 7 * MIB
    s3.abort_multipart_upload(**upload)
    assert (await store.quota("acme")).used_bytes == 0
    assert (await store.fsck()).ok


async def test_bytes_uploaded_multipart_and_natively_are_stored_once(
    store: BlobStore, url: str, clock: FakeClock
) -> None:
    """The same bytes completed from parts and put through the native API are one blob (once GC has taken the
    released parts), and fsck --read-data finds nothing wrong (staged parts neither orphans nor refcount drift,
    before and after)."""
    s3 = await client(store, url)
    s3.create_bucket(Bucket="dedup")
    first, second = os.urandom(5 * MIB), os.urandom(MIB)
    upload = begin(s3, "dedup", "k")
    parts = [
        {"PartNumber": n, "ETag": s3.upload_part(**upload, PartNumber=n, Body=body)["ETag"]}
        for n, body in ((1, first), (2, second))
    ]
    staged = await store.fsck(read_data=True)
    assert staged.problems == []
    s3.complete_multipart_upload(**upload, MultipartUpload={"Parts": parts})
    native = await store.tenant("acme").put("native", first + second)
    assert native.deduplicated
    blobs = await store.database.read(blob_count)
    assert blobs == 3  # the object, and the two part blobs unreferenced until GC reclaims them
    report = await store.fsck(read_data=True)
    assert report.problems == []
    clock.advance(store.settings.gc_grace_seconds + 1)
    assert (await store.gc()).blobs_reclaimed == 2
    assert await store.database.read(blob_count) == 1
    assert (await store.fsck(read_data=True)).problems == []
