"""Answers ceph/s3-tests expects, where blobstore first answered otherwise (docs/s3-tests.md): each test names the
suite's test it stands for. A real ``blobstore serve --s3-port``, boto3 with its defaults."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.support.s3_api import S3Server, s3_serving


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with s3_serving(tmp_path_factory.mktemp("s3-conformance")) as served:
        yield served


@pytest.fixture
def client(server: S3Server) -> Any:
    return server.boto3(*server.access_key("acme"))


def _error(call: Any, *args: Any, **kwargs: Any) -> tuple[int, str]:
    with pytest.raises(ClientError) as caught:
        call(*args, **kwargs)
    return caught.value.response["ResponseMetadata"]["HTTPStatusCode"], caught.value.response["Error"]["Code"]


def test_unicode_metadata_is_signed_stored_and_returned_as_sent(client: Any) -> None:
    """test_object_set_get_unicode_metadata: a non-ASCII metadata value (sent as UTF-8) passes the signature
    check and comes back the same."""
    client.create_bucket(Bucket="unicode-meta")

    def set_unicode_metadata(**kwargs: Any) -> None:
        kwargs["params"]["headers"]["x-amz-meta-meta1"] = "Hello World\xe9"

    client.meta.events.register("before-call.s3.PutObject", set_unicode_metadata)
    client.put_object(Bucket="unicode-meta", Key="foo", Body=b"bar")
    assert client.get_object(Bucket="unicode-meta", Key="foo")["Metadata"] == {"meta1": "Hello World\xe9"}


def test_copying_an_object_onto_itself_without_replacing_its_metadata_is_invalid(client: Any) -> None:
    """test_object_copy_to_itself: 400 InvalidRequest; with REPLACE it is a way to change the metadata."""
    client.create_bucket(Bucket="self-copy")
    client.put_object(Bucket="self-copy", Key="foo123bar", Body=b"foo")
    source = {"Bucket": "self-copy", "Key": "foo123bar"}

    assert _error(client.copy_object, CopySource=source, Bucket="self-copy", Key="foo123bar") == (
        400,
        "InvalidRequest",
    )
    client.copy_object(
        CopySource=source, Bucket="self-copy", Key="foo123bar", MetadataDirective="REPLACE", Metadata={"a": "b"}
    )
    assert client.head_object(Bucket="self-copy", Key="foo123bar")["Metadata"] == {"a": "b"}


def test_list_buckets_pages_with_max_buckets_and_a_continuation_token(server: S3Server) -> None:
    """test_list_buckets_paginated (on a tenant of its own, so the other tests' buckets do not count)."""
    client = server.boto3(*server.access_key("pager"))
    first = client.list_buckets(MaxBuckets=1)
    assert first["Buckets"] == []
    assert "ContinuationToken" not in first
    client.create_bucket(Bucket="page-one")
    client.create_bucket(Bucket="page-two")

    first = client.list_buckets(MaxBuckets=1)
    assert [bucket["Name"] for bucket in first["Buckets"]] == ["page-one"]
    second = client.list_buckets(MaxBuckets=1, ContinuationToken=first["ContinuationToken"])
    assert [bucket["Name"] for bucket in second["Buckets"]] == ["page-two"]
    assert "ContinuationToken" not in second
    assert [bucket["Name"] for bucket in client.list_buckets(Prefix="page-t")["Buckets"]] == ["page-two"]


@pytest.mark.parametrize("name", ["a", "ab", "Upper", "under_score"])
def test_a_bad_bucket_name_is_invalid_bucket_name(client: Any, name: str) -> None:
    """test_bucket_create_naming_bad_short_one / _two: S3's code is InvalidBucketName."""
    status, code = _error(client.create_bucket, Bucket=name)
    assert (status, code) == (400, "InvalidBucketName")


def test_a_presigned_url_that_expires_at_once_is_refused_as_expired(client: Any) -> None:
    """test_object_raw_get_x_amz_expires_out_range_zero: X-Amz-Expires=0 is 403, not a malformed query."""
    client.create_bucket(Bucket="expires-zero")
    client.put_object(Bucket="expires-zero", Key="foo", Body=b"foo")
    url = client.generate_presigned_url("get_object", Params={"Bucket": "expires-zero", "Key": "foo"}, ExpiresIn=0)
    answer = httpx.get(url)
    assert answer.status_code == 403
    assert b"<Code>AccessDenied</Code>" in answer.content


def test_a_v1_listing_that_ends_on_a_common_prefix_names_it_as_the_next_marker(client: Any) -> None:
    """test_bucket_list_delimiter_prefix: NextMarker is the common prefix itself, and listing on from it skips
    every key under it."""
    client.create_bucket(Bucket="markers")
    for key in ["asdf", "boo/bar", "boo/baz/xyzzy", "cquux/thud", "cquux/bla"]:
        client.put_object(Bucket="markers", Key=key, Body=b"")

    def page(marker: str, max_keys: int, prefix: str = "") -> tuple[list[str], list[str], str | None]:
        answer = client.list_objects(Bucket="markers", Delimiter="/", Marker=marker, MaxKeys=max_keys, Prefix=prefix)
        keys = [item["Key"] for item in answer.get("Contents", [])]
        prefixes = [item["Prefix"] for item in answer.get("CommonPrefixes", [])]
        return keys, prefixes, answer.get("NextMarker")

    assert page("", 1) == (["asdf"], [], "asdf")
    assert page("asdf", 1) == ([], ["boo/"], "boo/")
    assert page("boo/", 1) == ([], ["cquux/"], None)
    assert page("", 2) == (["asdf"], ["boo/"], "boo/")
    assert page("boo/", 2) == ([], ["cquux/"], None)
    assert page("", 1, prefix="boo/") == (["boo/bar"], [], "boo/bar")
    assert page("boo/bar", 1, prefix="boo/") == ([], ["boo/baz/"], None)


def test_listings_name_the_owner_of_each_object_as_s3_does(client: Any) -> None:
    """test_bucket_listv2_fetchowner_notempty / _empty, test_bucket_list_return_data: v1 always names each object's
    owner (the tenant), v2 only with fetch-owner=true."""
    client.create_bucket(Bucket="owners")
    client.put_object(Bucket="owners", Key="foo", Body=b"")

    [v1] = client.list_objects(Bucket="owners")["Contents"]
    assert v1["Owner"] == {"ID": "acme", "DisplayName": "acme"}
    [fetched] = client.list_objects_v2(Bucket="owners", FetchOwner=True)["Contents"]
    assert fetched["Owner"] == {"ID": "acme", "DisplayName": "acme"}
    [plain] = client.list_objects_v2(Bucket="owners", FetchOwner=False)["Contents"]
    assert "Owner" not in plain
    assert "Owner" not in client.list_objects_v2(Bucket="owners")["Contents"][0]
