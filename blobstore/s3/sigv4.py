"""AWS Signature Version 4: who signed an S3 request, checked against the access key's secret.

The canonical request is rebuilt on the server with botocore's own signer
pieces (``S3SigV4Auth``: canonical query string, canonical headers, signed
headers, string to sign, signature), so it agrees with AWS SDKs by
construction; the path is the request's raw path, exactly as the client sent
and signed it. Only the headers the client lists in ``SignedHeaders`` are used.

Both forms are accepted: the ``Authorization`` header (its time in ``X-Amz-Date`` or, as SigV4 allows, an
RFC 1123 ``Date`` header), and presigned query strings (``X-Amz-Signature`` and friends; at most 7 days,
UNSIGNED-PAYLOAD).
Answers: a request more than 15 minutes off the server's clock is
``RequestTimeTooSkewed``; an unknown, expired or revoked key ``InvalidAccessKeyId``;
a wrong signature ``SignatureDoesNotMatch``. Signatures are compared with
:func:`hmac.compare_digest`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from blobstore.auth import access_keys
from blobstore.model.preconditions import parse_http_date
from blobstore.s3.errors import S3Error

if TYPE_CHECKING:
    from blobstore.core.context import Core

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
#: What ``x-amz-content-sha256`` starts with when every chunk of an aws-chunked body is signed (blobstore.s3.chunked).
SIGNED_CHUNKS = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
MAX_SKEW = timedelta(minutes=15)
MAX_PRESIGNED_EXPIRY = 7 * 24 * 3600
_AUTHORIZATION = re.compile(
    rf"{ALGORITHM} Credential=(?P<credential>[^,\s]+),\s*SignedHeaders=(?P<signed>[a-z0-9;-]+),"
    r"\s*Signature=(?P<signature>[0-9a-f]{64})"
)
_AMZ_DATE = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True)
class Signed:
    """What a request claims about its signature, read from its header or its query string."""

    key_id: str
    scope_date: str
    region: str
    service: str
    signed_headers: str
    signature: str
    amz_date: str
    #: The hash the client signed for the body: 64 hex digits, UNSIGNED-PAYLOAD, or a STREAMING-* value.
    payload: str
    #: Presigned: seconds from ``amz_date`` the URL is valid; None for the header form.
    expires: int | None


@dataclass(frozen=True)
class ChunkSigner:
    """The signatures of a signed aws-chunked body, chained from the request's own (``seed``), per the S3 API
    reference ("Transferring Payload in Multiple Chunks"); ``sign`` signs a string with the request's key."""

    amz_date: str
    scope: str
    seed: str
    sign: Callable[[str], str]

    def chunk(self, previous: str, data_sha256: str) -> str:
        """The signature of a chunk whose bytes have SHA-256 ``data_sha256``, after the one signed ``previous``."""
        parts = ("AWS4-HMAC-SHA256-PAYLOAD", self.amz_date, self.scope, previous, _EMPTY_SHA256, data_sha256)
        return self.sign("\n".join(parts))

    def trailer(self, previous: str, trailer_sha256: str) -> str:
        """The signature of the trailer lines (``name:value\\n`` each) whose SHA-256 is ``trailer_sha256``."""
        return self.sign("\n".join(("AWS4-HMAC-SHA256-TRAILER", self.amz_date, self.scope, previous, trailer_sha256)))


@dataclass(frozen=True)
class Caller:
    """An authenticated request: the access key that signed it, the payload hash it signed, and the signer of
    its body's chunks when it signed them (``STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]``)."""

    key: access_keys.ActiveKey
    payload: str
    chunks: ChunkSigner | None = None


def parse_query(query: str) -> list[tuple[str, str]]:
    """The query string's (name, value) pairs, percent-decoded, blank values kept (``?location``: ("location", ""))."""
    pairs = []
    for part in query.split("&"):
        if part:
            name, _, value = part.partition("=")
            pairs.append((unquote(name), unquote(value)))
    return pairs


def read_signature(params: Sequence[tuple[str, str]], headers: Sequence[tuple[str, str]]) -> Signed | None:
    """The signature a request carries (Authorization header, else presigned query); None for an anonymous one."""
    header = dict(headers)
    query = dict(params)
    if "authorization" in header:
        match = _AUTHORIZATION.fullmatch(header["authorization"].strip())
        if match is None:
            raise S3Error(
                "AuthorizationHeaderMalformed", f"the Authorization header is not {ALGORITHM} as SigV4 writes it"
            )
        if "x-amz-content-sha256" not in header:
            raise S3Error("InvalidRequest", "missing required header for this request: x-amz-content-sha256")
        return _signed(
            match["credential"],
            match["signed"],
            match["signature"],
            header.get("x-amz-date") or _amz_date_of(header.get("date")),
            header["x-amz-content-sha256"],
            None,
        )
    if "X-Amz-Signature" in query:
        needed = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders")
        missing = [name for name in needed if name not in query]
        if missing or query["X-Amz-Algorithm"] != ALGORITHM:
            raise S3Error(
                "AuthorizationQueryParametersError", f"a presigned URL needs {', '.join(needed)} ({ALGORITHM})"
            )
        try:
            expires = int(query["X-Amz-Expires"])
        except ValueError:
            expires = -1
        if expires == 0:  # valid for no time at all: expired, as S3 answers it
            raise S3Error("AccessDenied", "request has expired")
        if not 0 < expires <= MAX_PRESIGNED_EXPIRY:
            raise S3Error(
                "AuthorizationQueryParametersError", f"X-Amz-Expires must be 0 to {MAX_PRESIGNED_EXPIRY} seconds"
            )
        return _signed(
            query["X-Amz-Credential"],
            query["X-Amz-SignedHeaders"],
            query["X-Amz-Signature"],
            query["X-Amz-Date"],
            UNSIGNED_PAYLOAD,
            expires,
        )
    return None


def _amz_date_of(date: str | None) -> str:
    """The time a request signed with an RFC 1123 ``Date`` header (SigV4's alternative to ``X-Amz-Date``) signs,
    in X-Amz-Date's form; AccessDenied if there is no Date that parses."""
    moment = parse_http_date(date)
    if moment is None:
        raise S3Error("AccessDenied", "AWS authentication requires a valid Date or x-amz-date header")
    return moment.astimezone(UTC).strftime(_AMZ_DATE)


def _signed(credential: str, signed: str, signature: str, amz_date: str, payload: str, expires: int | None) -> Signed:
    parts = credential.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        raise S3Error("AuthorizationHeaderMalformed", "the credential must be KEY/DATE/REGION/s3/aws4_request")
    return Signed(parts[0], parts[1], parts[2], parts[3], signed, signature, amz_date, payload, expires)


async def authenticate(
    core: Core,
    region: str,
    *,
    method: str,
    raw_path: str,
    params: Sequence[tuple[str, str]],
    headers: Sequence[tuple[str, str]],
    bucket: str | None = None,
    object_key: str | None = None,
) -> Caller:
    """The access key that signed this request, which is active and whose signature matches; S3Error otherwise.

    ``headers`` are (lower-case name, value) pairs as received; ``params`` come from :func:`parse_query`. The
    access key is read with its tenant's ``bucket`` and
    ``object_key`` (a native key), if named
    (blobstore.auth.access_keys.active).
    """
    signed = read_signature(params, headers)
    if signed is None:
        raise S3Error("AccessDenied", "anonymous requests are not accepted: sign them with an access key")
    _check_scope(signed, region)
    _check_time(signed, core.clock())
    key = await access_keys.active(core, signed.key_id, bucket=bucket, key=object_key)
    if key is None:
        raise S3Error("InvalidAccessKeyId", "the access key id does not exist in our records")
    unsigned_params = [(name, value) for name, value in params if name != "X-Amz-Signature"]
    expected = signature(
        key.secret,
        signed,
        method=method,
        raw_path=raw_path,
        params=unsigned_params,
        headers=headers,
    )
    if not hmac.compare_digest(expected, signed.signature):
        raise S3Error(
            "SignatureDoesNotMatch", "the request signature we calculated does not match the signature you provided"
        )
    chunks = chunk_signer(key.secret, signed) if signed.payload.startswith(SIGNED_CHUNKS) else None
    return Caller(key, signed.payload, chunks)


def _check_scope(signed: Signed, region: str) -> None:
    if signed.service != "s3" or signed.region != region or signed.scope_date != signed.amz_date[:8]:
        raise S3Error(
            "AuthorizationHeaderMalformed",
            f"the credential scope must be DATE/{region}/s3/aws4_request, DATE being that of X-Amz-Date (or Date)",
        )


def _check_time(signed: Signed, now: datetime) -> None:
    try:
        moment = datetime.strptime(signed.amz_date, _AMZ_DATE).replace(tzinfo=UTC)
    except ValueError:
        raise S3Error("AccessDenied", "X-Amz-Date must be YYYYMMDDTHHMMSSZ") from None
    if signed.expires is None:
        if abs(now - moment) > MAX_SKEW:
            raise S3Error(
                "RequestTimeTooSkewed", "the difference between the request time and the server's time is too large"
            )
        return
    if moment - now > MAX_SKEW:
        raise S3Error("AccessDenied", "the presigned URL is not valid yet")
    if now > moment + timedelta(seconds=signed.expires):
        raise S3Error("AccessDenied", "request has expired")


def signature(
    secret: str,
    signed: Signed,
    *,
    method: str,
    raw_path: str,
    params: Sequence[tuple[str, str]],
    headers: Sequence[tuple[str, str]],
) -> str:
    """The SigV4 signature of the request under ``secret``, computed by botocore's signer from the raw path, the
    query (without ``X-Amz-Signature``), the headers named in ``signed.signed_headers`` and ``signed.payload``."""
    names = set(signed.signed_headers.split(";"))
    signer, request = _botocore_signer(secret, signed, method=method, url=f"http://host{raw_path}", params=params)
    for name, value in headers:
        if name in names:
            request.headers[name] = value
    to_sign = signer.headers_to_sign(request)
    canonical = "\n".join(
        (
            method.upper(),
            raw_path,
            signer.canonical_query_string(request),
            signer.canonical_headers(to_sign) + "\n",
            signer.signed_headers(to_sign),
            signed.payload,
        )
    )
    result: str = signer.signature(signer.string_to_sign(request, canonical), request)
    return result


def chunk_signer(secret: str, signed: Signed) -> ChunkSigner:
    """The signer of the chunks of a request whose (verified) signature is ``signed``."""
    signer, request = _botocore_signer(secret, signed)
    return ChunkSigner(
        signed.amz_date,
        signer.credential_scope(request),
        signed.signature,
        lambda string_to_sign: str(signer.signature(string_to_sign, request)),
    )


def _botocore_signer(
    secret: str,
    signed: Signed,
    *,
    method: str = "PUT",
    url: str = "http://host/",
    params: Sequence[tuple[str, str]] = (),
) -> tuple[Any, Any]:
    """botocore's S3 SigV4 signer for ``signed``'s key, region and time, and an empty request for it to sign."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.compat import HTTPHeaders
    from botocore.credentials import Credentials

    request = AWSRequest(method=method, url=url, params=list(params))
    request.headers = HTTPHeaders()
    request.context["timestamp"] = signed.amz_date
    return S3SigV4Auth(Credentials(signed.key_id, secret), "s3", signed.region), request
