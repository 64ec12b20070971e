"""AWS Signature Version 2 presigned URLs (``?AWSAccessKeyId=…&Expires=…&Signature=…``).

boto3's ``generate_presigned_url`` still makes them by default for S3 in us-east-1. The string to sign is
rebuilt with botocore's own ``HmacV1Auth`` (standard headers, ``x-amz-*`` headers, canonical resource from
the raw path and the sub-resources of the query), so it agrees with clients by construction. A URL is good
until its ``Expires`` (at most 7 days ahead of the server's clock); the payload is never signed.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import SplitResult

from blobstore.auth import access_keys
from blobstore.s3.errors import S3Error
from blobstore.s3.sigv4 import MAX_PRESIGNED_EXPIRY, UNSIGNED_PAYLOAD, Caller

if TYPE_CHECKING:
    from blobstore.core.context import Core

_FIELDS = ("AWSAccessKeyId", "Expires", "Signature")


def is_presigned(params: Sequence[tuple[str, str]]) -> bool:
    """True if the query carries a SigV2 signature."""
    names = {name for name, _ in params}
    return "Signature" in names and "AWSAccessKeyId" in names


async def authenticate(
    core: Core,
    *,
    method: str,
    raw_path: str,
    raw_query: str,
    params: Sequence[tuple[str, str]],
    headers: Sequence[tuple[str, str]],
    bucket: str | None = None,
    object_key: str | None = None,
) -> Caller:
    """The access key that signed this SigV2 presigned request, if it is active, the URL has not expired and the
    signature matches; S3Error otherwise. The access key is read with its tenant's ``bucket`` and
    ``object_key`` (a native key), if named (blobstore.auth.access_keys.active)."""
    query = dict(params)
    if any(field not in query for field in _FIELDS) or not query["Expires"].isdigit():
        raise S3Error("AccessDenied", "a SigV2 presigned URL needs AWSAccessKeyId, Expires and Signature")
    expires = datetime.fromtimestamp(int(query["Expires"]), UTC)
    now = core.clock()
    if now > expires:
        raise S3Error("AccessDenied", "request has expired")
    if expires - now > timedelta(seconds=MAX_PRESIGNED_EXPIRY):
        raise S3Error("AccessDenied", "a presigned URL may live at most 7 days")
    key = await access_keys.active(core, query["AWSAccessKeyId"], bucket=bucket, key=object_key)
    if key is None:
        raise S3Error("InvalidAccessKeyId", "the access key id does not exist in our records")
    expected = signature(key.secret, method, raw_path, raw_query, headers, query["Expires"])
    if not hmac.compare_digest(expected, query["Signature"]):
        raise S3Error(
            "SignatureDoesNotMatch", "the request signature we calculated does not match the signature you provided"
        )
    return Caller(key, UNSIGNED_PAYLOAD)


def signature(
    secret: str, method: str, raw_path: str, raw_query: str, headers: Sequence[tuple[str, str]], expires: str
) -> str:
    """The base64 HMAC-SHA1 of the request's SigV2 string to sign, made by botocore's ``HmacV1Auth``."""
    from botocore.auth import HmacV1Auth
    from botocore.compat import HTTPHeaders
    from botocore.credentials import Credentials

    class _Expiring(HmacV1Auth):  # type: ignore[misc]
        def _get_date(self) -> str:
            return expires

    signed = HTTPHeaders()
    for name, value in headers:
        if name in ("content-md5", "content-type") or name.startswith("x-amz-"):
            signed[name] = value
    signer = _Expiring(Credentials("", secret))
    split = SplitResult("http", "host", raw_path, raw_query, "")
    result: str = signer.sign_string(signer.canonical_string(method, split, signed))
    return result
