"""S3's additional checksums: each algorithm's known answer, and PutObject verifying an ``x-amz-checksum-*``
header against the body on a real server (boto3 computing it, or a header set by hand)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from blobstore.s3 import checksums
from blobstore.s3.errors import S3Error
from tests.support.s3_api import S3Server, s3_serving

#: The CRC catalogue's check values (the checksum of b"123456789") and the digests of the same bytes.
CHECK_VALUES = {
    "x-amz-checksum-crc32": "cbf43926",
    "x-amz-checksum-crc32c": "e3069283",
    "x-amz-checksum-crc64nvme": "ae8b14860a799888",
    "x-amz-checksum-sha1": "f7c3bc1d808e04732adf679965ccc34ca7ae3441",
    "x-amz-checksum-sha256": "15e2b0d3c33891ebb0f1ef609ec419420c20e320ce94c65fbc8c3312448eb225",
}


@pytest.mark.parametrize("name", sorted(CHECK_VALUES))
def test_every_algorithm_has_its_known_answer(name: str) -> None:
    """Fed in two pieces, each hasher gives the catalogue's value, and check accepts exactly its base64."""
    hasher = checksums.hasher(name)
    hasher.update(b"1234")
    hasher.update(b"56789")
    assert hasher.digest().hex() == CHECK_VALUES[name]
    checksums.check(name, hasher, base64.b64encode(bytes.fromhex(CHECK_VALUES[name])).decode())
    with pytest.raises(S3Error) as raised:
        checksums.check(name, hasher, base64.b64encode(bytes(len(hasher.digest()))).decode())
    assert raised.value.code == "BadDigest"


@pytest.mark.parametrize(
    "headers",
    [
        {"x-amz-checksum-crc32": "not base64!"},
        {"x-amz-checksum-crc32": base64.b64encode(b"12345").decode()},
        {"x-amz-checksum-crc32": "AAAAAA==", "x-amz-checksum-sha1": base64.b64encode(bytes(20)).decode()},
    ],
)
def test_malformed_or_several_checksum_headers_are_invalid_requests(headers: dict[str, str]) -> None:
    """A value that is not base64, of the wrong size, or two algorithms at once: InvalidRequest."""
    with pytest.raises(S3Error) as raised:
        checksums.from_headers(headers)
    assert raised.value.code == "InvalidRequest"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real server on a fresh home."""
    with s3_serving(tmp_path_factory.mktemp("s3-checksums")) as served:
        yield served


def _s3(server: S3Server) -> Any:
    return server.boto3(*server.access_key(), Config(retries={"total_max_attempts": 1}))


@pytest.mark.parametrize("algorithm", ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"])
def test_boto3_checksums_are_verified_and_a_wrong_one_stores_nothing(server: S3Server, algorithm: str) -> None:
    """boto3's ChecksumAlgorithm header passes; the same header with another value is BadDigest, nothing stored."""
    s3 = _s3(server)
    bucket = f"sums-{algorithm.lower()}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="good", Body=b"checked bytes", ChecksumAlgorithm=algorithm)
    assert s3.get_object(Bucket=bucket, Key="good")["Body"].read() == b"checked bytes"
    header = f"x-amz-checksum-{algorithm.lower()}"

    def corrupt(request: Any, **_: Any) -> None:
        size = len(base64.b64decode(request.headers[header]))
        request.headers.replace_header(header, base64.b64encode(bytes(size)).decode())

    s3.meta.events.register("before-sign.s3.PutObject", corrupt)
    with pytest.raises(ClientError) as raised:
        s3.put_object(Bucket=bucket, Key="bad", Body=b"checked bytes", ChecksumAlgorithm=algorithm)
    assert raised.value.response["Error"]["Code"] == "BadDigest"
    with pytest.raises(ClientError) as missing:
        s3.head_object(Bucket=bucket, Key="bad")
    assert missing.value.response["Error"]["Code"] == "404"


@pytest.mark.parametrize("algorithm", ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"])
def test_a_verified_checksum_comes_back_with_checksum_mode(server: S3Server, algorithm: str) -> None:
    """The checksum a put carried is answered by the put, and by HEAD and GET with x-amz-checksum-mode: ENABLED
    (boto3 checks the body against it); not without it, nor for a range."""
    s3 = _s3(server)
    bucket = f"mode-{algorithm.lower()}"
    s3.create_bucket(Bucket=bucket)
    data = b"remember my checksum" * 1000
    put = s3.put_object(Bucket=bucket, Key="k", Body=data, ChecksumAlgorithm=algorithm)
    field = f"Checksum{algorithm}"
    assert s3.head_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")[field] == put[field]
    got = s3.get_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert (got[field], got["Body"].read()) == (put[field], data)
    assert field not in s3.head_object(Bucket=bucket, Key="k")
    assert field not in s3.get_object(Bucket=bucket, Key="k", Range="bytes=0-9", ChecksumMode="ENABLED")
