"""minio-py (MinIO's Python SDK) against a real server: buckets, many objects put and listed with and without
a delimiter, reads whole and ranged, stat, copy, presigned GET, removal."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from minio import Minio
from minio.commonconfig import CopySource
from minio.deleteobjects import DeleteObject
from minio.error import S3Error as MinioError

from tests.support.s3_api import S3Server, s3_serving


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real server on a fresh home."""
    with s3_serving(tmp_path_factory.mktemp("s3-minio")) as served:
        yield served


@pytest.fixture
def client(server: S3Server) -> Minio:
    """minio-py over plain HTTP with a new access key of acme."""
    key_id, secret = server.access_key()
    return Minio(urlsplit(server.s3_url).netloc, key_id, secret, secure=False, region="us-east-1")


def test_objects_round_trip_and_list(client: Minio, tmp_path: Any) -> None:
    """make_bucket; 51 objects put (one with +, &, =, €, %, ; in its name) and one of unknown length, streamed;
    list flat, by folder and recursively;
    get whole and a range; fput/fget; stat with metadata; copy; remove_objects; remove_bucket."""
    client.make_bucket("minio-objects")
    assert client.bucket_exists("minio-objects")
    assert not client.bucket_exists("minio-nobody")
    payloads = {f"dir{index % 5}/obj {index}.bin": os.urandom(index * 131) for index in range(50)}
    payloads["dir0/a+b & c=d €uro ~%25;(x).bin"] = b"odd name"
    for key, data in payloads.items():
        client.put_object("minio-objects", key, io.BytesIO(data), len(data))
    client.put_object("minio-objects", "streamed.bin", io.BytesIO(b"s" * 70000), -1, part_size=5 * 1024 * 1024)
    top = sorted(client.list_objects("minio-objects"), key=lambda item: str(item.object_name))
    assert [(item.object_name, item.is_dir) for item in top] == [
        *[(f"dir{index}/", True) for index in range(5)],
        ("streamed.bin", False),
    ]
    under = [item.object_name for item in client.list_objects("minio-objects", prefix="dir3/")]
    assert under == sorted(key for key in payloads if key.startswith("dir3/"))
    every = {item.object_name: item.size for item in client.list_objects("minio-objects", recursive=True)}
    assert every == {**{key: len(data) for key, data in payloads.items()}, "streamed.bin": 70000}
    response = client.get_object("minio-objects", "dir4/obj 49.bin")
    try:
        assert response.read() == payloads["dir4/obj 49.bin"]
    finally:
        response.close()
        response.release_conn()
    ranged = client.get_object("minio-objects", "dir4/obj 49.bin", offset=10, length=20)
    try:
        assert ranged.read() == payloads["dir4/obj 49.bin"][10:30]
    finally:
        ranged.close()
        ranged.release_conn()
    local = tmp_path / "local.txt"
    local.write_text("from a file")
    client.fput_object(
        "minio-objects",
        "files/local.txt",
        str(local),
        content_type="text/plain",
        metadata={"x-amz-meta-origin": "minio"},
    )
    stat = client.stat_object("minio-objects", "files/local.txt")
    assert (stat.size, stat.content_type, stat.metadata["x-amz-meta-origin"]) == (11, "text/plain", "minio")
    client.fget_object("minio-objects", "files/local.txt", str(tmp_path / "again.txt"))
    assert (tmp_path / "again.txt").read_text() == "from a file"
    client.copy_object("minio-objects", "files/copy.txt", CopySource("minio-objects", "files/local.txt"))
    assert client.stat_object("minio-objects", "files/copy.txt").etag == stat.etag
    url = client.presigned_get_object("minio-objects", "files/copy.txt")
    assert httpx.get(url).content == b"from a file"
    with pytest.raises(MinioError) as raised:
        client.remove_bucket("minio-objects")
    assert raised.value.code == "BucketNotEmpty"
    everything = [DeleteObject(item.object_name) for item in client.list_objects("minio-objects", recursive=True)]
    assert list(client.remove_objects("minio-objects", everything)) == []
    client.remove_bucket("minio-objects")
    assert not client.bucket_exists("minio-objects")


def test_errors_come_back_as_s3_codes(client: Minio) -> None:
    """A missing key and a missing bucket are NoSuchKey and NoSuchBucket to minio-py."""
    client.make_bucket("minio-errors")
    with pytest.raises(MinioError) as missing_key:
        client.stat_object("minio-errors", "nothing")
    assert missing_key.value.code == "NoSuchKey"
    with pytest.raises(MinioError) as missing_bucket:
        client.get_object("minio-nobody", "k")
    assert missing_bucket.value.code == "NoSuchBucket"
