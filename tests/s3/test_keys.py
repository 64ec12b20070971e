"""S3 keys over a real ``blobstore serve --s3-port``, driven by boto3: directory markers (``photos/``), a leading
``/`` and empty, ``.`` and ``..`` segments are ordinary literal keys, listed with delimiters as S3 lists them, and
object ``KEY`` of bucket ``B`` is the native key ``B/KEY``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support.cli_helpers import invoke
from tests.support.s3_api import S3Server, s3_serving

KEYS = ["photos/", "photos/a.jpg", "0/", "a//b", "a/./b", "a/../b", "a/b", "b", "/lead", ".", ".."]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """``blobstore serve --s3-port`` on the embedded store of a fresh home, once its S3 port answers."""
    with s3_serving(tmp_path_factory.mktemp("s3-home")) as served:
        yield served


@pytest.fixture
def s3(server: S3Server) -> Any:
    """boto3 with a new access key of acme."""
    return server.boto3(*server.access_key())


def _bucket(s3: Any, name: str) -> str:
    s3.create_bucket(Bucket=name)
    for key in KEYS:
        s3.put_object(Bucket=name, Key=key, Body=key.encode())
    return name


def _listed(s3: Any, bucket: str, **kwargs: str) -> tuple[list[str], list[str]]:
    """(keys, common prefixes) of ListObjectsV2 and, checked to agree, of ListObjects (v1)."""
    pages = [s3.list_objects_v2(Bucket=bucket, **kwargs), s3.list_objects(Bucket=bucket, **kwargs)]
    answers = [
        (
            [item["Key"] for item in page.get("Contents", [])],
            [item["Prefix"] for item in page.get("CommonPrefixes", [])],
        )
        for page in pages
    ]
    assert answers[0] == answers[1]
    return answers[0]


def test_markers_and_dot_segments_are_literal_objects(s3: Any, server: S3Server) -> None:
    """Each key holds its own bytes; ``a/../b`` is not ``b``; each is the native key ``B/KEY``."""
    bucket = _bucket(s3, "literal")
    for key in KEYS:
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == key.encode()
        assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] == len(key.encode())
    assert _listed(s3, bucket) == (sorted(KEYS), [])
    native = json.loads(invoke(["ls", "acme", f"{bucket}/", "--json"], home=server.home).ok().stdout)
    assert [entry["key"] for entry in native] == sorted(f"{bucket}/{key}" for key in KEYS)
    s3.copy_object(Bucket=bucket, Key="copy/../of", CopySource={"Bucket": bucket, "Key": "a/../b"})
    assert s3.get_object(Bucket=bucket, Key="copy/../of")["Body"].read() == b"a/../b"
    s3.delete_object(Bucket=bucket, Key="a/../b")
    with pytest.raises(ClientError, match="NoSuchKey"):
        s3.get_object(Bucket=bucket, Key="a/../b")
    assert s3.get_object(Bucket=bucket, Key="b")["Body"].read() == b"b"


def test_delimiters_group_keys_literally(s3: Any) -> None:
    """A delimiter cuts after the prefix at its first occurrence, whatever the segments around it are: a marker
    is listed as an object under its own prefix, and empty or dot segments are common prefixes of their own."""
    bucket = _bucket(s3, "delimited")
    assert _listed(s3, bucket, Delimiter="/") == ([".", "..", "b"], ["/", "0/", "a/", "photos/"])
    assert _listed(s3, bucket, Delimiter="/", Prefix="photos/") == (["photos/", "photos/a.jpg"], [])
    assert _listed(s3, bucket, Delimiter="/", Prefix="0/") == (["0/"], [])
    assert _listed(s3, bucket, Delimiter="/", Prefix="a/") == (["a/b"], ["a/../", "a/./", "a//"])
    assert _listed(s3, bucket, Delimiter="/", Prefix="/") == (["/lead"], [])


def test_a_key_of_1024_bytes_fits_in_a_bucket_of_63_characters(s3: Any) -> None:
    """S3's longest key in its longest bucket name: the native key of 1088 bytes round trips."""
    bucket = "b" * 63
    key = "k/" + "é" * 511
    assert len(key.encode()) == 1024
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key=key, Body=b"long")
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"long"
    assert _listed(s3, bucket, Prefix="k/") == ([key], [])


@pytest.mark.parametrize(
    "key",
    [
        "nul\0",
        "esc\x1b",
        "tab\there",
        "new\nline",
        "del\x7f",
    ],
)
def test_keys_with_control_characters_are_invalid_arguments(s3: Any, key: str) -> None:
    """A key with NUL or a control character is 400 InvalidArgument (a well-formed Error document: its Resource
    percent-encodes what XML cannot carry; a newline is routed too), and nothing is stored."""
    bucket = f"controls-{key.encode().hex()}"
    s3.create_bucket(Bucket=bucket)
    with pytest.raises(ClientError) as raised:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert _listed(s3, bucket) == ([], [])
    assert raised.value.response["Error"]["Code"] == "InvalidArgument"


def test_a_multipart_upload_completes_to_a_literal_key(s3: Any) -> None:
    """A multipart upload to ``big/../x/`` completes to that very key, beside an object ``x/``."""
    s3.create_bucket(Bucket="multipart-literal")
    s3.put_object(Bucket="multipart-literal", Key="x/", Body=b"marker")
    upload = s3.create_multipart_upload(Bucket="multipart-literal", Key="big/../x/")["UploadId"]
    part = s3.upload_part(Bucket="multipart-literal", Key="big/../x/", UploadId=upload, PartNumber=1, Body=b"parts")
    s3.complete_multipart_upload(
        Bucket="multipart-literal",
        Key="big/../x/",
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    assert s3.get_object(Bucket="multipart-literal", Key="big/../x/")["Body"].read() == b"parts"
    assert s3.get_object(Bucket="multipart-literal", Key="x/")["Body"].read() == b"marker"
    assert _listed(s3, "multipart-literal") == (["big/../x/", "x/"], [])


def _refused_as_too_long(call: Any, **kwargs: Any) -> None:
    with pytest.raises(ClientError) as raised:
        call(**kwargs)
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert raised.value.response["Error"]["Code"] == "KeyTooLongError"


def test_a_key_over_1024_bytes_is_key_too_long_on_every_operation(s3: Any, server: S3Server) -> None:
    """A key of 1,025 bytes (a native key that would fit: the bucket is short) is 400 KeyTooLongError on every
    operation taking a key, as a target or as a copy source; nothing is stored and no upload begins."""
    bucket, long = "short", "k" * 1025
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="fits", Body=b"x")
    upload = s3.create_multipart_upload(Bucket=bucket, Key="fits")["UploadId"]
    target = {"Bucket": bucket, "Key": long}
    _refused_as_too_long(s3.put_object, **target, Body=b"x")
    _refused_as_too_long(s3.get_object, **target)
    _refused_as_too_long(s3.delete_object, **target)
    _refused_as_too_long(s3.copy_object, **target, CopySource=f"{bucket}/fits")
    _refused_as_too_long(s3.copy_object, Bucket=bucket, Key="copy", CopySource=f"{bucket}/{long}")
    _refused_as_too_long(s3.create_multipart_upload, **target)
    _refused_as_too_long(s3.upload_part, **target, UploadId=upload, PartNumber=1, Body=b"x")
    _refused_as_too_long(
        s3.upload_part_copy, Bucket=bucket, Key="fits", UploadId=upload, PartNumber=1, CopySource=f"{bucket}/{long}"
    )
    assert _listed(s3, bucket) == (["fits"], [])
    assert s3.list_multipart_uploads(Bucket=bucket)["Uploads"][0]["Key"] == "fits"
    assert len(s3.list_multipart_uploads(Bucket=bucket)["Uploads"]) == 1
    native = json.loads(invoke(["ls", "acme", f"{bucket}/", "--json"], home=server.home).ok().stdout)
    assert [item["key"] for item in native] == [f"{bucket}/fits"]
