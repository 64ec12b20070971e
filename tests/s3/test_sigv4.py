"""SigV4 verification: botocore's signer pieces rebuild the signature server-side from the raw request."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from blobstore.s3 import sigv4
from blobstore.s3.errors import S3Error

#: The "GET Object" example of the S3 API reference (Signature Version 4, "Examples: Signature Calculations").
EXAMPLE_KEY, EXAMPLE_SECRET = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def _verify(method: str, url: str, headers: dict[str, str], secret: str) -> str:
    """The signature the server computes for a request as it would arrive, and the one it carries."""
    path_and_query = url.split("://", 1)[1].partition("/")[2]
    raw_path, _, query = ("/" + path_and_query).partition("?")
    params = sigv4.parse_query(query)
    lowered = [(name.lower(), value) for name, value in headers.items()]
    signed = sigv4.read_signature(params, lowered)
    assert signed is not None
    without = [(name, value) for name, value in params if name != "X-Amz-Signature"]
    computed = sigv4.signature(secret, signed, method=method, raw_path=raw_path, params=without, headers=lowered)
    return "ok" if computed == signed.signature else "mismatch"


def test_the_s3_reference_get_object_example() -> None:
    """The published example's headers give its published signature."""
    headers = {
        "Host": "examplebucket.s3.amazonaws.com",
        "Range": "bytes=0-9",
        "x-amz-content-sha256": EMPTY_SHA256,
        "x-amz-date": "20130524T000000Z",
        "Authorization": f"AWS4-HMAC-SHA256 Credential={EXAMPLE_KEY}/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
    }
    assert _verify("GET", "https://examplebucket.s3.amazonaws.com/test.txt", headers, EXAMPLE_SECRET) == "ok"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9000/bucket/a%20b/%E2%82%AC.txt",
        "http://127.0.0.1:9000/bucket?list-type=2&prefix=a%2Fb&delimiter=%2F",
        "http://127.0.0.1:9000/bucket?location",
    ],
)
def test_what_botocore_signs_verifies_and_a_wrong_secret_does_not(url: str) -> None:
    """A request signed by botocore's client signer verifies with its secret, not with another."""
    request = AWSRequest(method="GET", url=url, headers={"x-amz-content-sha256": EMPTY_SHA256})
    S3SigV4Auth(Credentials("AKBS0123456789ABCDEF", "s3cret"), "s3", "us-east-1").add_auth(request)
    headers = {"host": "127.0.0.1:9000", **dict(request.headers.items())}
    assert _verify("GET", url, headers, "s3cret") == "ok"
    assert _verify("GET", url, headers, "other") == "mismatch"


def test_a_presigned_url_verifies() -> None:
    """A presigned GET made by botocore verifies (the payload is UNSIGNED-PAYLOAD, the signature in the query)."""
    request = AWSRequest(method="GET", url="http://127.0.0.1:9000/bucket/key.txt")
    S3SigV4QueryAuth(Credentials("AKBS0123456789ABCDEF", "s3cret"), "s3", "us-east-1", expires=60).add_auth(request)
    assert _verify("GET", request.url, {"host": "127.0.0.1:9000"}, "s3cret") == "ok"
    assert (
        _verify("GET", request.url.replace("key.txt", "other.txt"), {"host": "127.0.0.1:9000"}, "s3cret") == "mismatch"
    )


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({"authorization": "AWS4-HMAC-SHA256 nonsense"}, "AuthorizationHeaderMalformed"),
        (
            {
                "authorization": "AWS4-HMAC-SHA256 Credential=K/20260101/us-east-1/s3/aws4_request, "
                "SignedHeaders=host, Signature=" + "0" * 64,
                "x-amz-date": "20260101T000000Z",
            },
            "InvalidRequest",
        ),
    ],
)
def test_malformed_authorization_is_one_clear_error(headers: dict[str, str], code: str) -> None:
    """A header that is not SigV4, or lacks x-amz-content-sha256, is refused before any lookup."""
    with pytest.raises(S3Error) as raised:
        sigv4.read_signature([], list(headers.items()))
    assert raised.value.code == code


def test_skew_over_fifteen_minutes_is_refused() -> None:
    """A request 16 minutes off the server's clock is RequestTimeTooSkewed; 14 minutes is fine."""
    signed = sigv4.Signed("K", "20260101", "us-east-1", "s3", "host", "0" * 64, "20260101T000000Z", EMPTY_SHA256, None)
    sigv4._check_time(signed, datetime(2026, 1, 1, 0, 14, tzinfo=UTC))
    with pytest.raises(S3Error) as raised:
        sigv4._check_time(signed, datetime(2026, 1, 1, 0, 16, tzinfo=UTC))
    assert raised.value.code == "RequestTimeTooSkewed"


@pytest.mark.parametrize(
    ("expires", "code"),
    [
        ("0", "AccessDenied"),
        ("604801", "AuthorizationQueryParametersError"),
        ("soon", "AuthorizationQueryParametersError"),
    ],
)
def test_presigned_expiry_must_be_one_second_to_seven_days(expires: str, code: str) -> None:
    """X-Amz-Expires outside 1..604800 seconds is refused before any lookup: 0 as already expired (AccessDenied,
    as S3 answers), the rest as a malformed query."""
    params = [
        ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
        ("X-Amz-Credential", "K/20260101/us-east-1/s3/aws4_request"),
        ("X-Amz-Date", "20260101T000000Z"),
        ("X-Amz-Expires", expires),
        ("X-Amz-SignedHeaders", "host"),
        ("X-Amz-Signature", "0" * 64),
    ]
    with pytest.raises(S3Error) as raised:
        sigv4.read_signature(params, [])
    assert raised.value.code == code


def test_an_expired_presigned_url_is_access_denied() -> None:
    """A presigned URL used after its expiry is AccessDenied."""
    signed = sigv4.Signed(
        "K", "20260101", "us-east-1", "s3", "host", "0" * 64, "20260101T000000Z", "UNSIGNED-PAYLOAD", 60
    )
    sigv4._check_time(signed, datetime(2026, 1, 1, 0, 0, 59, tzinfo=UTC))
    with pytest.raises(S3Error) as raised:
        sigv4._check_time(signed, datetime(2026, 1, 1, 0, 1, 1, tzinfo=UTC))
    assert raised.value.code == "AccessDenied"


def signed_with_date(
    method: str, host: str, path: str, moment: datetime, key_id: str, secret: str, region: str = "us-east-1"
) -> dict[str, str]:
    """The headers of a body-less request signed by the SigV4 specification's steps, written out here (no
    botocore), with an RFC 1123 ``Date`` header and no ``X-Amz-Date``."""
    headers = {"date": format_datetime(moment, usegmt=True), "host": host, "x-amz-content-sha256": EMPTY_SHA256}
    names = sorted(headers)
    canonical = "\n".join(
        [method, path, "", *(f"{name}:{headers[name]}" for name in names), "", ";".join(names), EMPTY_SHA256]
    )
    day, timestamp = moment.strftime("%Y%m%d"), moment.strftime("%Y%m%dT%H%M%SZ")
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", timestamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = f"AWS4{secret}".encode()
    for part in (day, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    authorization = f"AWS4-HMAC-SHA256 Credential={key_id}/{scope}, SignedHeaders={';'.join(names)}, "
    return headers | {"authorization": authorization + f"Signature={signature}"}


def test_a_request_signed_with_the_date_header_verifies() -> None:
    """SigV4 allows ``Date`` in place of ``X-Amz-Date``: the signature verifies with its secret (the time signed
    is the Date's), not with another, nor once the Date is changed."""
    moment = datetime(2026, 1, 1, 12, 30, 5, tzinfo=UTC)
    headers = signed_with_date("GET", "127.0.0.1:9000", "/bucket/key", moment, EXAMPLE_KEY, EXAMPLE_SECRET)
    assert _verify("GET", "http://127.0.0.1:9000/bucket/key", headers, EXAMPLE_SECRET) == "ok"
    assert _verify("GET", "http://127.0.0.1:9000/bucket/key", headers, "other") == "mismatch"
    later = headers | {"date": format_datetime(moment.replace(second=6), usegmt=True)}
    assert _verify("GET", "http://127.0.0.1:9000/bucket/key", later, EXAMPLE_SECRET) == "mismatch"
    signed = sigv4.read_signature([], list(headers.items()))
    assert signed is not None
    assert signed.amz_date == "20260101T123005Z"


def test_the_date_header_is_held_to_the_skew_rule_and_x_amz_date_wins() -> None:
    """A Date 16 minutes off is RequestTimeTooSkewed (14 is fine); with both, X-Amz-Date is the time signed."""
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    headers = list(signed_with_date("GET", "h", "/", moment, "K", "s").items())
    signed = sigv4.read_signature([], headers)
    assert signed is not None
    sigv4._check_time(signed, datetime(2026, 1, 1, 0, 14, tzinfo=UTC))
    with pytest.raises(S3Error) as raised:
        sigv4._check_time(signed, datetime(2026, 1, 1, 0, 16, tzinfo=UTC))
    assert raised.value.code == "RequestTimeTooSkewed"
    both = sigv4.read_signature([], [*headers, ("x-amz-date", "20260101T000100Z")])
    assert both is not None
    assert both.amz_date == "20260101T000100Z"


@pytest.mark.parametrize("date", [None, "", "yesterday", "Thu, 32 Jan 2026 00:00:00 GMT"])
def test_a_signature_without_a_valid_date_is_access_denied(date: str | None) -> None:
    """Neither X-Amz-Date nor a Date that parses: AccessDenied, before any lookup (as S3 answers)."""
    headers = dict(signed_with_date("GET", "h", "/", datetime(2026, 1, 1, tzinfo=UTC), "K", "s"))
    del headers["date"]
    if date is not None:
        headers["date"] = date
    with pytest.raises(S3Error) as raised:
        sigv4.read_signature([], list(headers.items()))
    assert raised.value.code == "AccessDenied"
