"""Virtual-host-style addressing (``blobstore serve --s3-domain``): ``Host: BUCKET.DOMAIN`` addresses bucket BUCKET,
path style keeps working, and SigV4 and SigV2 signatures verify for both. No DNS here: the clients name the virtual
host in their URLs and signatures, and a botocore ``before-send`` hook (or httpx's ``Host`` header) sends the
request to 127.0.0.1 with that ``Host``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from blobstore.s3 import router
from tests.support.s3_api import S3Server, s3_serving

DOMAIN = "s3.example.test"


@pytest.mark.parametrize(
    ("raw_path", "host", "domain", "expected"),
    [
        ("/key/in/it", "photos.s3.example.test:9000", DOMAIN, "/photos/key/in/it"),
        ("/", "photos.s3.example.test", DOMAIN, "/photos"),
        ("/", "my.dotted.bucket.S3.Example.Test:80", DOMAIN, "/my.dotted.bucket"),
        ("/photos/key", "s3.example.test:9000", DOMAIN, "/photos/key"),
        ("/photos/key", "127.0.0.1:9000", DOMAIN, "/photos/key"),
        ("/photos/key", "photos.s3.example.test.evil:9000", DOMAIN, "/photos/key"),
        ("/photos/key", "xs3.example.test", DOMAIN, "/photos/key"),
        ("/photos/key", "photos.s3.example.test", None, "/photos/key"),
        ("/photos/key", None, DOMAIN, "/photos/key"),
    ],
)
def test_the_path_style_path_of_a_request(raw_path: str, host: str | None, domain: str | None, expected: str) -> None:
    """A subdomain of the domain (port aside, any case) is the bucket; the bare domain, any other host, or no
    domain configured: the path is path style already."""
    assert router.path_style(raw_path, host, domain) == expected


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real server with ``--s3-domain``."""
    with s3_serving(tmp_path_factory.mktemp("s3-virtual"), "--s3-domain", DOMAIN) as served:
        yield served


def _at_domain(server: S3Server, key_id: str, secret: str, signature_version: str = "s3v4") -> Any:
    """boto3 addressing buckets virtual-host style under ``http://s3.example.test:PORT``."""
    return boto3.client(
        "s3",
        endpoint_url=f"http://{DOMAIN}:{urlsplit(server.s3_url).port}",
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        region_name="us-east-1",
        config=Config(signature_version=signature_version, s3={"addressing_style": "virtual"}),
    )


def _virtual_client(server: S3Server, key_id: str, secret: str) -> Any:
    """:func:`_at_domain`'s client, its requests sent to the server's loopback address with their signed ``Host``."""
    s3 = _at_domain(server, key_id, secret)

    def to_loopback(request: Any, **_: Any) -> None:
        url = urlsplit(request.url)
        assert url.hostname is not None
        assert url.hostname.endswith("." + DOMAIN), f"not virtual-host style: {request.url}"
        request.headers["Host"] = url.netloc
        request.url = urlunsplit(url._replace(netloc=urlsplit(server.s3_url).netloc))

    s3.meta.events.register("before-send.s3", to_loopback)
    return s3


def test_boto3_works_virtual_host_style_and_path_style_sees_the_same_objects(server: S3Server) -> None:
    """CreateBucket, PutObject, GetObject, HeadObject, ListObjectsV2, DeleteObject and DeleteBucket virtual-host
    style (SigV4 over the virtual host); the object is the same one path style."""
    key_id, secret = server.access_key()
    virtual, path = _virtual_client(server, key_id, secret), server.boto3(key_id, secret)
    virtual.create_bucket(Bucket="virtual-photos")
    virtual.put_object(Bucket="virtual-photos", Key="cats/tom.jpg", Body=b"meow")
    assert virtual.get_object(Bucket="virtual-photos", Key="cats/tom.jpg")["Body"].read() == b"meow"
    assert virtual.head_object(Bucket="virtual-photos", Key="cats/tom.jpg")["ContentLength"] == 4
    listed = virtual.list_objects_v2(Bucket="virtual-photos", Prefix="cats/")
    assert [entry["Key"] for entry in listed["Contents"]] == ["cats/tom.jpg"]
    assert path.get_object(Bucket="virtual-photos", Key="cats/tom.jpg")["Body"].read() == b"meow"
    assert "virtual-photos" in [bucket["Name"] for bucket in path.list_buckets()["Buckets"]]
    virtual.delete_object(Bucket="virtual-photos", Key="cats/tom.jpg")
    with pytest.raises(ClientError) as raised:
        path.head_object(Bucket="virtual-photos", Key="cats/tom.jpg")
    assert raised.value.response["Error"]["Code"] == "404"
    virtual.delete_bucket(Bucket="virtual-photos")
    assert "virtual-photos" not in [bucket["Name"] for bucket in path.list_buckets()["Buckets"]]


@pytest.mark.parametrize("version", ["s3v4", "s3"], ids=["sigv4", "sigv2"])
def test_presigned_virtual_host_urls_verify(server: S3Server, version: str) -> None:
    """A presigned GET of a virtual-host URL (SigV4, and SigV2 as boto3 makes by default in us-east-1) is served
    when it arrives with that Host, and refused (403) for another object of the bucket."""
    key_id, secret = server.access_key()
    bucket = f"virtual-{version}"
    server.boto3(key_id, secret).create_bucket(Bucket=bucket)
    server.boto3(key_id, secret).put_object(Bucket=bucket, Key="a b.txt", Body=b"shared")
    port = urlsplit(server.s3_url).port
    signer = _at_domain(server, key_id, secret, version)
    url = urlsplit(signer.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "a b.txt"}))
    assert url.netloc == f"{bucket}.{DOMAIN}:{port}"
    assert ("X-Amz-Signature=" if version == "s3v4" else "AWSAccessKeyId=") in url.query
    target = urlunsplit(url._replace(scheme="http", netloc=f"127.0.0.1:{port}"))
    served = httpx.get(target, headers={"Host": url.netloc})
    assert (served.status_code, served.content) == (200, b"shared")
    other = httpx.get(target.replace("a%20b.txt", "other.txt"), headers={"Host": url.netloc})
    assert other.status_code == 403
