"""Conditional writes through S3 on a real server: PutObject's ``If-None-Match: *`` and ``If-Match``, and
CopyObject's ``x-amz-copy-source-if-*`` evaluated on the source, as S3 answers them."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from blobstore.s3 import router
from blobstore.s3.errors import S3Error
from tests.support.s3_api import S3Server, s3_serving


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real server on a fresh home."""
    with s3_serving(tmp_path_factory.mktemp("s3-conditional")) as served:
        yield served


@pytest.fixture
def s3(server: S3Server, request: pytest.FixtureRequest) -> Any:
    """boto3 (no retries) with a bucket named after the test."""
    client = server.boto3(*server.access_key(), Config(retries={"total_max_attempts": 1}, max_pool_connections=16))
    client.create_bucket(Bucket=_bucket(request))
    return client


def _bucket(request: pytest.FixtureRequest) -> str:
    """The test's own bucket, named after it."""
    return str(request.node.name.replace("_", "-")[:60].strip("-").lower())


def _code(call: Any, **kwargs: Any) -> str:
    with pytest.raises(ClientError) as raised:
        call(**kwargs)
    code: str = raised.value.response["Error"]["Code"]
    return code


def test_if_none_match_star_writes_only_a_new_key(s3: Any, request: pytest.FixtureRequest) -> None:
    """The first put wins; a second is 412 PreconditionFailed and the first bytes stay."""
    bucket = _bucket(request)
    s3.put_object(Bucket=bucket, Key="k", Body=b"first", IfNoneMatch="*")
    assert _code(s3.put_object, Bucket=bucket, Key="k", Body=b"second", IfNoneMatch="*") == "PreconditionFailed"
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"first"


def test_concurrent_creates_of_one_key_have_one_winner(s3: Any, request: pytest.FixtureRequest) -> None:
    """Eight clients putting the same new key with If-None-Match: * at once: exactly one succeeds."""
    bucket = _bucket(request)

    def put(index: int) -> str:
        try:
            s3.put_object(Bucket=bucket, Key="race", Body=b"writer %d" % index, IfNoneMatch="*")
        except ClientError as error:
            return str(error.response["Error"]["Code"])
        return "ok"

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(put, range(8)))
    assert sorted(outcomes) == ["PreconditionFailed"] * 7 + ["ok"]
    winner = outcomes.index("ok")
    assert s3.get_object(Bucket=bucket, Key="race")["Body"].read() == b"writer %d" % winner


def test_if_match_replaces_only_the_version_named(s3: Any, request: pytest.FixtureRequest) -> None:
    """If-Match with the current ETag replaces; a stale ETag is 412; a missing key is NoSuchKey."""
    bucket = _bucket(request)
    first = s3.put_object(Bucket=bucket, Key="k", Body=b"one")["ETag"]
    second = s3.put_object(Bucket=bucket, Key="k", Body=b"two", IfMatch=first)["ETag"]
    assert _code(s3.put_object, Bucket=bucket, Key="k", Body=b"three", IfMatch=first) == "PreconditionFailed"
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"two"
    s3.put_object(Bucket=bucket, Key="k", Body=b"four", IfMatch=second.strip('"'))
    assert _code(s3.put_object, Bucket=bucket, Key="nowhere", Body=b"x", IfMatch=second) == "NoSuchKey"


def test_if_none_match_other_than_star_is_not_implemented(s3: Any, request: pytest.FixtureRequest) -> None:
    """S3 accepts only ``*`` in a PUT's If-None-Match."""
    bucket = _bucket(request)
    assert _code(s3.put_object, Bucket=bucket, Key="k", Body=b"x", IfNoneMatch='"abc"') == "NotImplemented"


def test_copy_source_conditions_are_evaluated_on_the_source(s3: Any, request: pytest.FixtureRequest) -> None:
    """Each x-amz-copy-source-if-* header as S3 answers it: met, the copy is made; not met, 412 and no copy."""
    bucket = _bucket(request)
    etag = s3.put_object(Bucket=bucket, Key="src", Body=b"source")["ETag"]
    modified = s3.head_object(Bucket=bucket, Key="src")["LastModified"]
    before, after = modified - timedelta(hours=1), modified + timedelta(hours=1)
    cases: list[tuple[dict[str, Any], bool]] = [
        ({"CopySourceIfMatch": etag}, True),
        ({"CopySourceIfMatch": '"0123"'}, False),
        ({"CopySourceIfNoneMatch": '"0123"'}, True),
        ({"CopySourceIfNoneMatch": etag}, False),
        ({"CopySourceIfModifiedSince": before}, True),
        ({"CopySourceIfModifiedSince": after}, False),
        ({"CopySourceIfUnmodifiedSince": after}, True),
        ({"CopySourceIfUnmodifiedSince": before}, False),
        # S3's documented pairs: If-Match true wins over If-Unmodified-Since false (copied); If-None-Match
        # false with If-Modified-Since true is 412.
        ({"CopySourceIfMatch": etag, "CopySourceIfUnmodifiedSince": before}, True),
        ({"CopySourceIfNoneMatch": etag, "CopySourceIfModifiedSince": before}, False),
    ]
    for index, (conditions, copied) in enumerate(cases):
        target = f"copy-{index}"
        arguments = {"Bucket": bucket, "Key": target, "CopySource": {"Bucket": bucket, "Key": "src"}, **conditions}
        if copied:
            s3.copy_object(**arguments)
            assert s3.get_object(Bucket=bucket, Key=target)["Body"].read() == b"source", conditions
        else:
            assert _code(s3.copy_object, **arguments) == "PreconditionFailed", conditions
            assert _code(s3.head_object, Bucket=bucket, Key=target) == "404", conditions


@pytest.mark.parametrize(
    ("method", "headers"),
    [
        ("PUT", {"x-amz-copy-source": "b/src", "if-none-match": "*"}),
        ("PUT", {"if-unmodified-since": "Mon, 07 Dec 2026 00:00:00 GMT"}),
        ("DELETE", {"if-match": '"abc"'}),
    ],
)
def test_conditions_this_api_does_not_evaluate_answer_501(method: str, headers: dict[str, str]) -> None:
    """A copy's destination conditions, a PUT's date conditions and a conditional DELETE are NotImplemented,
    never ignored."""
    with pytest.raises(S3Error) as raised:
        router.route(method, "/b/key", [], headers)
    assert raised.value.code == "NotImplemented"
