"""boto3 over HTTPS (a self-signed certificate): its default uploads are aws-chunked with a CRC32 trailer."""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import uvicorn
from botocore.config import Config
from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from blobstore import BlobStore
from blobstore.auth import access_keys
from blobstore.s3 import create_app
from tests.support.stores import StoreFactory


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A key and a certificate for 127.0.0.1, valid for a day."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_file, cert_file = directory / "key.pem", directory / "cert.pem"
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return key_file, cert_file


@pytest.fixture
async def store(open_store: StoreFactory) -> BlobStore:
    """An embedded store (SQLite and a local directory)."""
    return await open_store("sqlite-local")


@pytest.fixture
def https(store: BlobStore, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The S3 app over TLS on a free loopback port: its URL and the certificate to trust."""
    key_file, cert_file = _self_signed(tmp_path)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        create_app(settings=store.settings),
        log_level="warning",
        ssl_keyfile=str(key_file),
        ssl_certfile=str(cert_file),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    try:
        yield f"https://127.0.0.1:{sock.getsockname()[1]}", cert_file
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


async def _client(store: BlobStore, url: str, cert: Path, config: Config | None = None) -> Any:
    key = await access_keys.create(store.core, "acme")
    return boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id=key.info.id,
        aws_secret_access_key=key.secret,
        region_name="us-east-1",
        verify=str(cert),
        config=config,
    )


async def test_boto3_default_uploads_over_https_are_decoded(store: BlobStore, https: tuple[str, Path]) -> None:
    """PutObject with boto3's defaults over TLS (aws-chunked, CRC32 trailer) stores exactly the bytes sent."""
    s3 = await _client(store, *https)
    seen: list[str] = []
    s3.meta.events.register(
        "before-send.s3.PutObject", lambda request, **_: seen.append(request.headers["x-amz-content-sha256"].decode())
    )
    s3.create_bucket(Bucket="tls")
    data = bytes(range(256)) * 2000
    put = s3.put_object(Bucket="tls", Key="big.bin", Body=data)
    assert seen == ["STREAMING-UNSIGNED-PAYLOAD-TRAILER"]
    assert put["ETag"] == f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"'
    assert s3.get_object(Bucket="tls", Key="big.bin")["Body"].read() == data
    assert await store.tenant("acme").get("tls/big.bin") == data


async def test_a_wrong_trailing_checksum_stores_nothing(store: BlobStore, https: tuple[str, Path]) -> None:
    """A CRC32 trailer that does not match the bytes is BadDigest, and the key is not stored."""
    s3 = await _client(store, *https, Config(retries={"total_max_attempts": 1}))  # botocore retries BadDigest
    s3.create_bucket(Bucket="tls-bad")

    def corrupt(request: Any, **_: Any) -> None:
        body = request.body.read() if hasattr(request.body, "read") else request.body
        request.body = body.replace(b"x-amz-checksum-crc32:", b"x-amz-checksum-crc32:AAAA", 1)
        del request.headers["Transfer-Encoding"]
        request.headers["Content-Length"] = str(len(request.body))

    s3.meta.events.register("before-send.s3.PutObject", corrupt)
    with pytest.raises(ClientError) as raised:
        s3.put_object(Bucket="tls-bad", Key="k", Body=b"payload")
    assert raised.value.response["Error"]["Code"] == "BadDigest"
    assert not await store.tenant("acme").exists("tls-bad/k")
