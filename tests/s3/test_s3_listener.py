"""``blobstore serve --s3-port`` serves the S3 API as it serves the native one: over the same store, in the access
log and the metrics (labelled by S3 operation), with the body timeout, and sharing one connection pool."""

from __future__ import annotations

import json
import socket
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.support.cli_helpers import invoke
from tests.support.live_server import free_port
from tests.support.s3_api import s3_serving

BODY_TIMEOUT = 1


@dataclass(frozen=True)
class Listener:
    home: Path
    url: str
    s3_url: str
    metrics_url: str
    client: Any


@pytest.fixture(scope="module")
def listener(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Listener]:
    home = tmp_path_factory.mktemp("s3-listener")
    metrics_port = free_port()
    with s3_serving(home, "--metrics-port", str(metrics_port), "--body-timeout", str(BODY_TIMEOUT)) as served:
        client = served.boto3(*served.access_key("acme"))
        client.create_bucket(Bucket="logged")
        yield Listener(home, served.url, served.s3_url, f"http://127.0.0.1:{metrics_port}/metrics", client)


def _access_lines(home: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (home / "serve.out").read_text().splitlines() if line.startswith("{")]


def _line_where(home: Path, field: str, value: str) -> dict[str, Any]:
    """The last access-log line whose ``field`` is ``value``, once it is written (the server logs a request after
    its answer is sent)."""
    deadline = time.monotonic() + 30
    while True:
        found = [line for line in _access_lines(home) if line[field] == value]
        if found:
            return found[-1]
        assert time.monotonic() < deadline, f"no access-log line with {field} {value}"
        time.sleep(0.1)


def test_s3_requests_are_logged_and_counted_by_operation_and_tenant(listener: Listener) -> None:
    listener.client.put_object(Bucket="logged", Key="a/b.txt", Body=b"hello")
    assert listener.client.get_object(Bucket="logged", Key="a/b.txt")["Body"].read() == b"hello"

    line = _line_where(listener.home, "route", "S3 GetObject")
    assert (line["method"], line["status"], line["tenant"], line["bytes_out"]) == ("GET", 200, "acme", 5)
    assert "a/b.txt" not in json.dumps(_access_lines(listener.home))  # keys are never logged
    metrics = httpx.get(listener.metrics_url).text
    assert 'route="S3 PutObject"' in metrics
    assert 'route="S3 GetObject"' in metrics


def test_an_unsigned_request_is_logged_before_it_has_an_operation_or_tenant(listener: Listener) -> None:
    assert httpx.get(f"{listener.s3_url}/logged", headers={"x-request-id": "anonymous-probe"}).status_code == 403
    line = _line_where(listener.home, "request_id", "anonymous-probe")
    assert (line["route"], line["status"], line["tenant"]) == ("S3 ListObjects", 403, None)


def test_a_body_that_stops_arriving_times_out_as_s3_answers_and_stores_nothing(listener: Listener) -> None:
    url = listener.client.generate_presigned_url("put_object", Params={"Bucket": "logged", "Key": "stalled"})
    head, body = _raw_put(url, content_length=100, sent=b"0123456789")
    assert head.startswith(b"HTTP/1.1 400"), head
    assert b"<Code>RequestTimeout</Code>" in body
    database = sqlite3.connect(listener.home / "blobstore.db")
    assert database.execute("SELECT count(*) FROM refs WHERE key = 'logged/stalled'").fetchone() == (0,)


def test_both_apis_share_one_store_and_see_each_others_writes_at_once(listener: Listener) -> None:
    token = invoke(["token", "create", "acme"], home=listener.home).ok().stdout.strip()
    native = httpx.put(
        f"{listener.url}/v1/tenants/acme/objects/logged/native.txt",
        content=b"from the native API",
        headers={"authorization": f"Bearer {token}"},
    )
    assert native.status_code == 201
    assert listener.client.get_object(Bucket="logged", Key="native.txt")["Body"].read() == b"from the native API"


def _raw_put(url: str, content_length: int, sent: bytes, headers: str = "") -> tuple[bytes, bytes]:
    """Send a PUT to the presigned ``url`` (with ``headers``: ``Name: value\r\n`` lines) declaring
    ``content_length`` but sending only ``sent``; its answer's head and body (read until the S3 error document
    ends or the server closes)."""
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    with socket.create_connection((parts.hostname, parts.port)) as connection:
        connection.sendall(
            f"PUT {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"{headers}Content-Length: {content_length}\r\n\r\n".encode()
            + sent
        )
        connection.settimeout(BODY_TIMEOUT + 30)
        answer = b""
        while b"</Error>" not in answer:
            chunk = connection.recv(65536)
            if not chunk:
                break
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return head, body


def test_a_put_over_quota_is_refused_from_its_headers_before_its_body(listener: Listener) -> None:
    """The S3 PUT judges the declared length against the tenant's quota before it reads a byte, as the native PUT
    does: 403 QuotaExceeded at once (not the body timeout's RequestTimeout), and nothing stored."""
    invoke(["tenant", "quota", "set", "acme", "--max-bytes", "1000000"], home=listener.home).ok()
    try:
        url = listener.client.generate_presigned_url("put_object", Params={"Bucket": "logged", "Key": "too-big"})
        head, body = _raw_put(url, content_length=2_000_000, sent=b"")
    finally:
        invoke(["tenant", "quota", "set", "acme", "--clear-bytes"], home=listener.home).ok()
    assert head.startswith(b"HTTP/1.1 403"), head
    assert b"<Code>QuotaExceeded</Code>" in body
    database = sqlite3.connect(listener.home / "blobstore.db")
    assert database.execute("SELECT count(*) FROM refs WHERE key = 'logged/too-big'").fetchone() == (0,)


def test_a_create_only_put_of_an_existing_key_is_refused_before_its_body(listener: Listener) -> None:
    """If-None-Match: * on a key that exists answers 412 from the headers alone (the bind still decides a race)."""
    listener.client.put_object(Bucket="logged", Key="taken", Body=b"first")
    url = listener.client.generate_presigned_url("put_object", Params={"Bucket": "logged", "Key": "taken"})
    head, body = _raw_put(url, content_length=100, sent=b"", headers="If-None-Match: *\r\n")
    assert head.startswith(b"HTTP/1.1 412"), head
    assert b"<Code>PreconditionFailed</Code>" in body
    assert listener.client.get_object(Bucket="logged", Key="taken")["Body"].read() == b"first"
