"""The S3 API of a real ``blobstore serve --s3-port`` process, driven by boto3 with its default configuration.

One server for the module (its store holds two tenants, acme and globex); each test uses buckets of its own.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.support.cli_helpers import invoke
from tests.support.s3_api import S3Server, s3_serving


@dataclass(frozen=True)
class Server(S3Server):
    """A running server (tests.support.s3_api) and a token of acme's for its native API."""

    token: str


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``blobstore serve --s3-port`` on the embedded store of a fresh home, once its S3 port answers."""
    with s3_serving(tmp_path_factory.mktemp("s3-home")) as served:
        token = invoke(["token", "create", "acme"], home=served.home).ok().stdout.strip()
        yield Server(served.home, served.url, served.s3_url, token)


def _key(server: Server, tenant: str, *args: str) -> dict[str, Any]:
    created: dict[str, Any] = json.loads(
        invoke(["access-key", "create", tenant, *args, "--json"], home=server.home).ok().stdout
    )
    return created


def _client(server: Server, key_id: str, secret: str) -> Any:
    """boto3's S3 client with its defaults, pointed at the server."""
    return server.boto3(key_id, secret)


def _s3(server: Server, tenant: str = "acme") -> Any:
    key = _key(server, tenant)
    return _client(server, key["access_key_id"], key["secret_access_key"])


def _code(call: Any, *args: Any, **kwargs: Any) -> str:
    """The S3 error code ``call`` fails with."""
    with pytest.raises(ClientError) as raised:
        call(*args, **kwargs)
    code: str = raised.value.response["Error"]["Code"]
    return code


def test_buckets_are_created_listed_headed_and_deleted(server: Server) -> None:
    """CreateBucket, ListBuckets, HeadBucket, GetBucketLocation, DeleteBucket; a second create is refused."""
    s3 = _s3(server)
    s3.create_bucket(Bucket="life-cycle")
    assert "life-cycle" in [bucket["Name"] for bucket in s3.list_buckets()["Buckets"]]
    s3.head_bucket(Bucket="life-cycle")
    assert s3.get_bucket_location(Bucket="life-cycle")["LocationConstraint"] is None
    assert _code(s3.create_bucket, Bucket="life-cycle") == "BucketAlreadyOwnedByYou"
    s3.delete_bucket(Bucket="life-cycle")
    assert "life-cycle" not in [bucket["Name"] for bucket in s3.list_buckets()["Buckets"]]
    assert _code(s3.head_bucket, Bucket="life-cycle") == "404"
    assert _code(s3.delete_bucket, Bucket="life-cycle") == "NoSuchBucket"


def test_objects_are_put_got_headed_and_deleted(server: Server) -> None:
    """PutObject answers the MD5 ETag; GetObject and HeadObject give back the bytes, type, metadata and ETag."""
    s3 = _s3(server)
    s3.create_bucket(Bucket="objects")
    data = b"hello, s3" * 1000
    etag = f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"'
    put = s3.put_object(Bucket="objects", Key="dir/a b €.txt", Body=data, ContentType="text/plain", Metadata={"n": "1"})
    assert put["ETag"] == etag
    got = s3.get_object(Bucket="objects", Key="dir/a b €.txt")
    assert got["Body"].read() == data
    assert (got["ETag"], got["ContentType"], got["Metadata"]) == (etag, "text/plain", {"n": "1"})
    head = s3.head_object(Bucket="objects", Key="dir/a b €.txt")
    assert (head["ContentLength"], head["ETag"]) == (len(data), etag)
    assert _code(s3.delete_bucket, Bucket="objects") == "BucketNotEmpty"
    s3.delete_object(Bucket="objects", Key="dir/a b €.txt")
    assert _code(s3.get_object, Bucket="objects", Key="dir/a b €.txt") == "NoSuchKey"
    assert _code(s3.head_object, Bucket="objects", Key="dir/a b €.txt") == "404"
    s3.delete_object(Bucket="objects", Key="dir/a b €.txt")  # deleting a missing key succeeds, as in S3
    assert _code(s3.put_object, Bucket="no-such-bucket", Key="k", Body=b"x") == "NoSuchBucket"


def test_list_objects_v2_pages_and_groups_by_delimiter(server: Server) -> None:
    """Prefix, delimiter with CommonPrefixes, max-keys and continuation tokens (v2) or markers (v1), through
    boto3's paginators."""
    s3 = _s3(server)
    s3.create_bucket(Bucket="listing")
    keys = ["a.txt", "b/1", "b/2", "c/x/1", "d.txt", "e.txt"]
    for key in keys:
        s3.put_object(Bucket="listing", Key=key, Body=key.encode())
    top = s3.list_objects_v2(Bucket="listing", Delimiter="/")
    assert [item["Key"] for item in top["Contents"]] == ["a.txt", "d.txt", "e.txt"]
    assert [common["Prefix"] for common in top["CommonPrefixes"]] == ["b/", "c/"]
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket="listing", PaginationConfig={"PageSize": 2})
    assert [item["Key"] for page in pages for item in page.get("Contents", [])] == keys
    under = s3.list_objects_v2(Bucket="listing", Prefix="b/")
    assert [item["Key"] for item in under["Contents"]] == ["b/1", "b/2"]
    v1 = s3.get_paginator("list_objects").paginate(Bucket="listing", Delimiter="/", PaginationConfig={"PageSize": 2})
    pages = list(v1)
    assert [item["Key"] for page in pages for item in page.get("Contents", [])] == ["a.txt", "d.txt", "e.txt"]
    assert [common["Prefix"] for page in pages for common in page.get("CommonPrefixes", [])] == ["b/", "c/"]
    assert [page["IsTruncated"] for page in pages] == [True, True, False]
    versions = s3.get_paginator("list_object_versions").paginate(Bucket="listing", PaginationConfig={"PageSize": 4})
    listed = [
        (item["Key"], item["VersionId"], item["IsLatest"]) for page in versions for item in page.get("Versions", [])
    ]
    assert listed == [(key, "null", True) for key in keys]


def test_an_object_is_the_native_key_bucket_slash_key(server: Server) -> None:
    """What S3 puts, the native API reads as B/KEY, and what the native API puts, S3 reads."""
    s3 = _s3(server)
    s3.create_bucket(Bucket="shared")
    s3.put_object(Bucket="shared", Key="from-s3.txt", Body=b"via s3")
    auth = {"Authorization": f"Bearer {server.token}"}
    native = httpx.get(f"{server.url}/v1/tenants/acme/objects/shared/from-s3.txt", headers=auth)
    assert native.status_code == 200
    assert native.content == b"via s3"
    put = httpx.put(f"{server.url}/v1/tenants/acme/objects/shared/native.txt", content=b"via http", headers=auth)
    assert put.status_code == 201
    assert s3.get_object(Bucket="shared", Key="native.txt")["Body"].read() == b"via http"


def test_same_bytes_through_both_apis_are_one_blob(server: Server) -> None:
    """Bytes put through S3 and then through the native API (another key) are stored once."""
    s3 = _s3(server)
    s3.create_bucket(Bucket="dedup")
    data = b"dedup me " * 4096
    s3.put_object(Bucket="dedup", Key="one", Body=data)
    auth = {"Authorization": f"Bearer {server.token}"}
    put = httpx.put(f"{server.url}/v1/tenants/acme/objects/elsewhere/two", content=data, headers=auth)
    assert put.json()["deduplicated"] is True
    digest = put.json()["digest"]
    with sqlite3.connect(server.home / "blobstore.db") as db:
        assert db.execute("SELECT count(*) FROM blobs WHERE digest = ?", (digest,)).fetchone() == (1,)


def test_another_tenants_bucket_answers_as_a_missing_one(server: Server) -> None:
    """globex's key on acme's bucket gets exactly what it gets for a bucket nobody has."""
    acme, globex = _s3(server), _s3(server, "globex")
    acme.create_bucket(Bucket="acme-private")
    acme.put_object(Bucket="acme-private", Key="secret.txt", Body=b"secret")
    for bucket in ("acme-private", "nobody-has-this"):
        assert _code(globex.head_bucket, Bucket=bucket) == "404"
        assert _code(globex.get_object, Bucket=bucket, Key="secret.txt") == "NoSuchBucket"
        assert _code(globex.put_object, Bucket=bucket, Key="secret.txt", Body=b"x") == "NoSuchBucket"
        assert _code(globex.delete_object, Bucket=bucket, Key="secret.txt") == "NoSuchBucket"
        assert _code(globex.list_objects_v2, Bucket=bucket) == "NoSuchBucket"
        assert _code(globex.delete_bucket, Bucket=bucket) == "NoSuchBucket"
    assert "acme-private" not in [bucket["Name"] for bucket in globex.list_buckets()["Buckets"]]
    globex.create_bucket(Bucket="acme-private")  # a name of its own, beside acme's
    assert acme.get_object(Bucket="acme-private", Key="secret.txt")["Body"].read() == b"secret"


def test_wrong_secret_unknown_key_and_revoked_key_are_refused(server: Server) -> None:
    """A wrong secret is SignatureDoesNotMatch, an unknown id InvalidAccessKeyId, a revoked key refused at once."""
    key = _key(server, "acme")
    assert _code(_client(server, key["access_key_id"], "wrong" * 8).list_buckets) == "SignatureDoesNotMatch"
    assert _code(_client(server, "AKBS0123456789ABCDEF", key["secret_access_key"]).list_buckets) == "InvalidAccessKeyId"
    s3 = _client(server, key["access_key_id"], key["secret_access_key"])
    s3.list_buckets()
    invoke(["access-key", "revoke", key["access_key_id"]], home=server.home).ok()
    assert _code(s3.list_buckets) == "InvalidAccessKeyId"


def test_scopes_limit_what_a_key_may_do(server: Server) -> None:
    """A read-only key lists and reads but may not create or delete: AccessDenied."""
    _s3(server).create_bucket(Bucket="scoped")
    key = _key(server, "acme", "--scope", "read")
    reader = _client(server, key["access_key_id"], key["secret_access_key"])
    reader.head_bucket(Bucket="scoped")
    assert _code(reader.put_object, Bucket="scoped", Key="k", Body=b"x") == "AccessDenied"
    assert _code(reader.delete_bucket, Bucket="scoped") == "AccessDenied"


def test_a_body_that_does_not_match_its_signed_hash_stores_nothing(server: Server) -> None:
    """x-amz-content-sha256 is checked against the body: a mismatch is refused and the key is not stored."""
    s3 = _s3(server)
    s3.create_bucket(Bucket="tampered")

    def tamper(request: Any, **_: Any) -> None:
        request.body = b"other bytes"  # after signing: the signed hash is of the original body

    s3.meta.events.register("before-send.s3.PutObject", tamper)
    assert _code(s3.put_object, Bucket="tampered", Key="k", Body=b"original") == "XAmzContentSHA256Mismatch"
    s3.meta.events.unregister("before-send.s3.PutObject", tamper)
    assert "Contents" not in s3.list_objects_v2(Bucket="tampered")


def test_operations_not_implemented_answer_501_in_s3_xml(server: Server) -> None:
    """Tagging and other operations answer NotImplemented."""
    s3 = _s3(server)
    s3.create_bucket(Bucket="unsupported")
    assert _code(s3.get_bucket_tagging, Bucket="unsupported") == "NotImplemented"
    assert _code(s3.get_object_tagging, Bucket="unsupported", Key="a") == "NotImplemented"


def test_the_s3_listener_needs_a_single_process(tmp_path: Path) -> None:
    """--s3-port with several workers is refused at start with one sentence, before anything listens."""
    invoke(["serve", "--s3-port", "0", "--workers", "2"], home=tmp_path).failed("--workers 1")


def test_presigned_sigv4_urls_work_with_a_plain_client_until_tampered(server: Server) -> None:
    """A SigV4 presigned GET and PUT made by boto3 work over plain HTTP; a changed key is SignatureDoesNotMatch."""
    key = _key(server, "acme")
    s3 = boto3.client(
        "s3",
        endpoint_url=server.s3_url,
        aws_access_key_id=key["access_key_id"],
        aws_secret_access_key=key["secret_access_key"],
        region_name="us-east-1",
        config=Config(signature_version="s3v4"),
    )
    s3.create_bucket(Bucket="presigned")
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": "presigned", "Key": "up.txt"}, ExpiresIn=60)
    assert httpx.put(put_url, content=b"uploaded").status_code == 200
    get_url = s3.generate_presigned_url("get_object", Params={"Bucket": "presigned", "Key": "up.txt"}, ExpiresIn=60)
    assert httpx.get(get_url).content == b"uploaded"
    tampered = httpx.get(get_url.replace("up.txt", "other.txt"))
    assert tampered.status_code == 403
    assert b"<Code>SignatureDoesNotMatch</Code>" in tampered.content


def test_a_single_range_is_206_with_content_range(server: Server) -> None:
    """bytes=a-b, bytes=a- and bytes=-n give those bytes; a range past the end is InvalidRange."""
    s3 = _s3(server)
    s3.create_bucket(Bucket="ranges")
    data = bytes(range(256)) * 4
    s3.put_object(Bucket="ranges", Key="r", Body=data)
    for header, expected, content_range in (
        ("bytes=10-19", data[10:20], "bytes 10-19/1024"),
        ("bytes=1000-", data[1000:], "bytes 1000-1023/1024"),
        ("bytes=-5", data[-5:], "bytes 1019-1023/1024"),
        ("bytes=1020-5000", data[1020:], "bytes 1020-1023/1024"),
    ):
        got = s3.get_object(Bucket="ranges", Key="r", Range=header)
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert (got["Body"].read(), got["ContentRange"]) == (expected, content_range)
    assert _code(s3.get_object, Bucket="ranges", Key="r", Range="bytes=2000-") == "InvalidRange"
    whole = s3.get_object(Bucket="ranges", Key="r", Range="bytes=5-1,7-8")
    assert whole["Body"].read() == data


def test_delete_objects_deletes_many_keys_at_once(server: Server) -> None:
    """DeleteObjects reports every key Deleted (missing ones too, as S3 does), accepts VersionId null, and
    reports a real version id as an error; Quiet leaves the deleted ones out."""
    s3 = _s3(server)
    s3.create_bucket(Bucket="bulk")
    for key in ("a", "b", "c/d"):
        s3.put_object(Bucket="bulk", Key=key, Body=key.encode())
    result = s3.delete_objects(
        Bucket="bulk",
        Delete={
            "Objects": [
                {"Key": "a"},
                {"Key": "c/d", "VersionId": "null"},
                {"Key": "missing"},
                {"Key": "b", "VersionId": "v1"},
            ]
        },
    )
    assert sorted(item["Key"] for item in result["Deleted"]) == ["a", "c/d", "missing"]
    assert [(item["Key"], item["Code"]) for item in result["Errors"]] == [("b", "NoSuchVersion")]
    quiet = s3.delete_objects(Bucket="bulk", Delete={"Objects": [{"Key": "b"}], "Quiet": True})
    assert "Deleted" not in quiet
    assert "Contents" not in s3.list_objects_v2(Bucket="bulk")


def test_versioning_and_acls_are_answered_truthfully(server: Server) -> None:
    """Versioning was never enabled; every ACL is private to the tenant; x-amz-acl public-read changes nothing."""
    s3 = _s3(server)
    s3.create_bucket(Bucket="acls", ACL="public-read")
    s3.put_object(Bucket="acls", Key="k", Body=b"x", ACL="public-read")
    assert "Status" not in s3.get_bucket_versioning(Bucket="acls")
    for acl in (s3.get_bucket_acl(Bucket="acls"), s3.get_object_acl(Bucket="acls", Key="k")):
        assert acl["Owner"]["ID"] == "acme"
        assert [(grant["Grantee"]["ID"], grant["Permission"]) for grant in acl["Grants"]] == [("acme", "FULL_CONTROL")]
    assert httpx.get(f"{server.s3_url}/acls/k").status_code == 403
    assert _code(s3.get_object_acl, Bucket="acls", Key="missing") == "NoSuchKey"


def test_copy_object_is_a_new_reference_across_buckets(server: Server) -> None:
    """CopyObject keeps type and metadata (COPY) or takes new ones (REPLACE); no new blob; another tenant's
    source bucket is NoSuchBucket."""
    s3 = _s3(server)
    s3.create_bucket(Bucket="copy-from")
    s3.create_bucket(Bucket="copy-to")
    data = b"copied bytes " * 100
    put = s3.put_object(Bucket="copy-from", Key="src", Body=data, ContentType="text/plain", Metadata={"a": "1"})
    copied = s3.copy_object(Bucket="copy-to", Key="dst", CopySource={"Bucket": "copy-from", "Key": "src"})
    assert copied["CopyObjectResult"]["ETag"] == put["ETag"]
    head = s3.head_object(Bucket="copy-to", Key="dst")
    assert (head["ContentType"], head["Metadata"], head["ETag"]) == ("text/plain", {"a": "1"}, put["ETag"])
    s3.copy_object(
        Bucket="copy-to",
        Key="replaced",
        CopySource="copy-from/src",
        MetadataDirective="REPLACE",
        ContentType="application/octet-stream",
        Metadata={"b": "2"},
    )
    replaced = s3.get_object(Bucket="copy-to", Key="replaced")
    assert (replaced["Body"].read(), replaced["Metadata"]) == (data, {"b": "2"})
    digest = head["ResponseMetadata"]["HTTPHeaders"]["x-blobstore-digest"]
    with sqlite3.connect(server.home / "blobstore.db") as db:
        assert db.execute("SELECT count(*) FROM blobs WHERE digest = ?", (digest,)).fetchone() == (1,)
    globex = _s3(server, "globex")
    globex.create_bucket(Bucket="globex-copies")
    source = {"Bucket": "copy-from", "Key": "src"}
    assert _code(globex.copy_object, Bucket="globex-copies", Key="stolen", CopySource=source) == "NoSuchBucket"


def test_presigned_sigv2_urls_of_boto3s_default_work_until_tampered_or_expired(server: Server) -> None:
    """boto3's default generate_presigned_url (SigV2 in us-east-1) works for GET and PUT with a plain client;
    a changed key is SignatureDoesNotMatch, an expired URL AccessDenied."""
    s3 = _s3(server)
    s3.create_bucket(Bucket="presigned-v2")
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": "presigned-v2", "Key": "up.txt"}, ExpiresIn=60)
    assert "Signature=" in put_url
    assert "X-Amz-Signature" not in put_url
    assert httpx.put(put_url, content=b"uploaded").status_code == 200
    get_url = s3.generate_presigned_url("get_object", Params={"Bucket": "presigned-v2", "Key": "up.txt"}, ExpiresIn=60)
    assert httpx.get(get_url).content == b"uploaded"
    tampered = httpx.get(get_url.replace("up.txt", "other.txt"))
    assert b"<Code>SignatureDoesNotMatch</Code>" in tampered.content
    expired = s3.generate_presigned_url("get_object", Params={"Bucket": "presigned-v2", "Key": "up.txt"}, ExpiresIn=-10)
    assert b"<Code>AccessDenied</Code>" in httpx.get(expired).content


def test_conditional_get_and_head_follow_s3s_rules(server: Server) -> None:
    """If-Match (412 when it fails), If-None-Match (304 when it matches), If-Modified-Since and
    If-Unmodified-Since on GET and HEAD (conditional writes: tests/s3/test_conditional_writes.py)."""
    s3 = _s3(server)
    s3.create_bucket(Bucket="conditions")
    etag = s3.put_object(Bucket="conditions", Key="k", Body=b"v1")["ETag"]
    modified = s3.head_object(Bucket="conditions", Key="k")["LastModified"]
    before, after = modified - timedelta(hours=1), modified + timedelta(hours=1)
    assert s3.get_object(Bucket="conditions", Key="k", IfMatch=etag)["Body"].read() == b"v1"
    assert _code(s3.get_object, Bucket="conditions", Key="k", IfMatch='"other"') == "PreconditionFailed"
    assert _code(s3.get_object, Bucket="conditions", Key="k", IfNoneMatch=etag) == "304"
    assert _code(s3.head_object, Bucket="conditions", Key="k", IfNoneMatch=etag) == "304"
    assert _code(s3.get_object, Bucket="conditions", Key="k", IfModifiedSince=after) == "304"
    assert s3.get_object(Bucket="conditions", Key="k", IfModifiedSince=before)["Body"].read() == b"v1"
    assert _code(s3.head_object, Bucket="conditions", Key="k", IfUnmodifiedSince=before) == "412"
    assert s3.get_object(Bucket="conditions", Key="k", IfMatch=etag, IfUnmodifiedSince=before)["ETag"] == etag
