"""aws-chunked bodies, unsigned or with signed chunks: decoded as they stream, cut, forged or malformed ones
refused; the AWS reference's chunk-signature example computed exactly."""

from __future__ import annotations

import base64
import hashlib
import os
import zlib
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from blobstore import BlobStore, buckets
from blobstore.auth import access_keys
from blobstore.s3 import chunked, create_app, sigv4
from blobstore.s3.errors import S3Error
from tests.support.live_server import serving_app
from tests.support.stores import StoreFactory

TRAILER = "x-amz-checksum-crc32"


def _body(payload: bytes, *, chunk: int = 3, checksum: bytes | None = None) -> bytes:
    crc = checksum if checksum is not None else base64.b64encode(zlib.crc32(payload).to_bytes(4, "big"))
    parts = [
        b"%x\r\n%s\r\n" % (len(payload[i : i + chunk]), payload[i : i + chunk]) for i in range(0, len(payload), chunk)
    ]
    return b"".join(parts) + b"0\r\n" + TRAILER.encode() + b":" + crc + b"\r\n\r\n"


async def _pieces(body: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


async def _decode(body: bytes, size: int = 5) -> bytes:
    pieces = chunked.decoded(_pieces(body, size), chunked.UNSIGNED_TRAILER, TRAILER)
    return b"".join([piece async for piece in pieces])


@pytest.mark.parametrize("size", [1, 2, 7, 1000])
async def test_the_payload_comes_out_whatever_the_network_pieces(size: int) -> None:
    """Chunk headers, data and trailer split anywhere across reads decode to the payload."""
    assert await _decode(_body(b"hello, aws-chunked world"), size) == b"hello, aws-chunked world"


async def test_an_empty_payload() -> None:
    """A body of the final chunk and the trailer alone is the empty payload."""
    assert await _decode(_body(b"")) == b""


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (_body(b"hello world")[:-10], "IncompleteBody"),
        (b"zz\r\nhello\r\n", "IncompleteBody"),
        (b"5\r\nhelloXX0\r\n\r\n", "IncompleteBody"),
        (_body(b"hello", checksum=b"AAAAAA=="), "BadDigest"),
    ],
)
async def test_cut_malformed_or_mismatched_bodies_are_refused(body: bytes, code: str) -> None:
    """A body cut short, a size that is not hex, a chunk longer than it says, or a wrong CRC32: one S3 error."""
    with pytest.raises(S3Error) as raised:
        await _decode(body)
    assert raised.value.code == code


def test_unsupported_trailing_checksums_answer_501() -> None:
    """A checksum this server cannot verify is NotImplemented, not silently accepted."""
    with pytest.raises(S3Error) as raised:
        chunked.trailing_checksum("x-amz-checksum-md5")
    assert raised.value.code == "NotImplemented"


#: The S3 API reference's chunked-upload example ("Signature Calculations for the Authorization Header:
#: Transferring Payload in Multiple Chunks", Example: PUT Object): 65 KiB and 1 KiB of "a", then the final chunk.
EXAMPLE_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
EXAMPLE_HEADERS = {
    "host": "s3.amazonaws.com",
    "x-amz-date": "20130524T000000Z",
    "x-amz-storage-class": "REDUCED_REDUNDANCY",
    "authorization": "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
    "SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
    "x-amz-decoded-content-length;x-amz-storage-class, "
    "Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
    "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
    "content-encoding": "aws-chunked",
    "x-amz-decoded-content-length": "66560",
    "content-length": "66824",
}
EXAMPLE_CHUNKS = [
    (b"a" * 65536, "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"),
    (b"a" * 1024, "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497"),
    (b"", "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"),
]


def _example_signer() -> sigv4.ChunkSigner:
    signed = sigv4.read_signature([], list(EXAMPLE_HEADERS.items()))
    assert signed is not None
    return sigv4.chunk_signer(EXAMPLE_SECRET, signed)


def _example_body() -> bytes:
    return b"".join(b"%x;chunk-signature=%s\r\n%s\r\n" % (len(d), s.encode(), d) for d, s in EXAMPLE_CHUNKS)


def test_the_reference_example_seed_signature() -> None:
    """The example's headers give its published seed signature through the server's SigV4 check."""
    signed = sigv4.read_signature([], list(EXAMPLE_HEADERS.items()))
    assert signed is not None
    computed = sigv4.signature(
        EXAMPLE_SECRET,
        signed,
        method="PUT",
        raw_path="/examplebucket/chunkObject.txt",
        params=[],
        headers=list(EXAMPLE_HEADERS.items()),
    )
    assert computed == signed.signature


def test_the_reference_example_chunk_signatures() -> None:
    """Chaining from the seed, the three chunks get exactly the published chunk signatures."""
    signer = _example_signer()
    previous = signer.seed
    for data, published in EXAMPLE_CHUNKS:
        previous = signer.chunk(previous, hashlib.sha256(data).hexdigest())
        assert previous == published


async def _decode_signed(
    body: bytes, size: int = 4096, encoding: str = chunked.SIGNED, trailer: str | None = None
) -> bytes:
    pieces = chunked.decoded(_pieces(body, size), encoding, trailer, _example_signer())
    return b"".join([piece async for piece in pieces])


@pytest.mark.parametrize("size", [1000, 65536, 70000])
async def test_the_reference_example_body_decodes(size: int) -> None:
    """The example's whole body (66,824 bytes as sent) decodes to its 66,560 bytes of payload."""
    body = _example_body()
    assert len(body) == int(EXAMPLE_HEADERS["content-length"])
    assert await _decode_signed(body, size) == b"a" * 66560


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (_example_body().replace(b"a" * 10, b"b" * 10, 1), "SignatureDoesNotMatch"),
        (_example_body().replace(b"ad80c730", b"00000000"), "SignatureDoesNotMatch"),
        (_example_body().replace(b";chunk-signature=ad80c730", b";x=ad80c730"), "SignatureDoesNotMatch"),
        (_example_body()[:-200], "IncompleteBody"),
        (_example_body()[: 65536 + 90], "IncompleteBody"),
    ],
)
async def test_forged_or_cut_signed_bodies_are_refused(body: bytes, code: str) -> None:
    """A changed byte, a wrong or missing chunk signature: SignatureDoesNotMatch; a body cut: IncompleteBody."""
    with pytest.raises(S3Error) as raised:
        await _decode_signed(body)
    assert raised.value.code == code


def _signed_body(
    signer: sigv4.ChunkSigner, data: bytes, size: int, crc32: bytes | None = None, trailer_signature: str = ""
) -> bytes:
    """``data`` in signed chunks of ``size`` bytes, then the final chunk; with ``crc32``, the trailer of that
    checksum and its signature (``trailer_signature`` instead, if given)."""
    body, previous = b"", signer.seed
    for chunk in [data[i : i + size] for i in range(0, len(data), size)] + [b""]:
        previous = signer.chunk(previous, hashlib.sha256(chunk).hexdigest())
        body += b"%x;chunk-signature=%s\r\n%s" % (len(chunk), previous.encode(), chunk + b"\r\n" * bool(chunk))
    if crc32 is None:
        return body + b"\r\n"
    line = b"x-amz-checksum-crc32:" + base64.b64encode(crc32)
    signature = trailer_signature or signer.trailer(previous, hashlib.sha256(line + b"\n").hexdigest())
    return body + line + b"\r\nx-amz-trailer-signature:" + signature.encode() + b"\r\n\r\n"


def test_the_reference_example_body_is_what_the_builder_makes() -> None:
    """The body builder the other tests use makes the reference example's body exactly."""
    assert _signed_body(_example_signer(), b"a" * 66560, 65536) == _example_body()


async def test_a_signed_trailer_is_verified() -> None:
    """STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER: the checksum and the trailer signature are both checked."""
    data = b"signed with a trailer" * 100
    crc = zlib.crc32(data).to_bytes(4, "big")
    good = _signed_body(_example_signer(), data, 1000, crc)
    assert await _decode_signed(good, 7, chunked.SIGNED_TRAILER, TRAILER) == data
    for body, code in [
        (_signed_body(_example_signer(), data, 1000, crc, "0" * 64), "SignatureDoesNotMatch"),
        (_signed_body(_example_signer(), data, 1000, b"\0\0\0\0"), "BadDigest"),
        (good.replace(b"x-amz-checksum-crc32:", b"x-amz-checksum-crc32: ", 1)[:-4], "IncompleteBody"),
    ]:
        with pytest.raises(S3Error) as raised:
            await _decode_signed(body, 7, chunked.SIGNED_TRAILER, TRAILER)
        assert raised.value.code == code


@pytest.fixture
async def store(open_store: StoreFactory) -> BlobStore:
    """An embedded store (SQLite and a local directory)."""
    return await open_store("sqlite-local")


@pytest.fixture
def s3_url(store: BlobStore) -> Iterator[str]:
    """The S3 app over the store, served over HTTP on a free loopback port."""
    with serving_app(create_app(settings=store.settings)) as url:
        yield url


class _StreamingAuth(S3SigV4Auth):
    """botocore's S3 signer in us-east-1, signing ``streaming`` (a STREAMING-* value) as the payload's hash."""

    def __init__(self, credentials: Credentials, streaming: str) -> None:
        super().__init__(credentials, "s3", "us-east-1")
        self._streaming = streaming

    def payload(self, request: AWSRequest) -> str:
        return self._streaming


async def _put_signed_chunks(
    store: BlobStore,
    url: str,
    key: str,
    data: bytes,
    edit: Callable[[bytes], bytes] = lambda body: body,
    *,
    trailer: bool = False,
) -> httpx.Response:
    """A PutObject as the Java SDK v2 sends it: headers signed by botocore with the streaming payload value,
    then 8 KiB chunks each signed after the previous (with a signed CRC32 trailer if ``trailer``); the body as
    ``edit`` leaves it (its length is not signed)."""
    access = await access_keys.create(store.core, "acme")
    streaming = chunked.SIGNED_TRAILER if trailer else chunked.SIGNED
    headers = {
        "content-encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(len(data)),
        **({"x-amz-trailer": TRAILER} if trailer else {}),
    }
    request = AWSRequest(method="PUT", url=f"{url}/{key}", headers=headers)
    _StreamingAuth(Credentials(access.info.id, access.secret), streaming).add_auth(request)
    headers = {name.lower(): value for name, value in request.headers.items()}
    signed = sigv4.read_signature([], list(headers.items()))
    assert signed is not None
    crc32 = zlib.crc32(data).to_bytes(4, "big") if trailer else None
    body = edit(_signed_body(sigv4.chunk_signer(access.secret, signed), data, 8192, crc32))
    headers["content-length"] = str(len(body))
    async with httpx.AsyncClient() as client:
        return await client.put(f"{url}/{key}", content=body, headers=headers)


@pytest.mark.parametrize("trailer", [False, True], ids=["signed", "signed-trailer"])
async def test_signed_chunks_end_to_end(store: BlobStore, s3_url: str, trailer: bool) -> None:
    """A real server stores a signed aws-chunked upload's payload; a forged byte is 403 SignatureDoesNotMatch
    and a body cut short IncompleteBody, and neither stores anything."""
    await buckets.create(store.core, "acme", "chunks")
    data = bytes(range(256)) * 100
    put = await _put_signed_chunks(store, s3_url, "chunks/signed.bin", data, trailer=trailer)
    assert put.status_code == 200, put.text
    assert put.headers["etag"] == f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"'
    assert await store.tenant("acme").get("chunks/signed.bin") == data
    if trailer:  # the verified trailing checksum is answered and recorded
        crc32 = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
        assert put.headers[TRAILER] == crc32
        digest = (await store.tenant("acme").stat("chunks/signed.bin")).digest
        assert (await buckets.facts(store.core, "acme", digest)).checksums == {"crc32": crc32}
    for edit, status, code in [
        (lambda body: body.replace(b"\x10\x11\x12", b"\x00\x00\x00", 1), 403, "SignatureDoesNotMatch"),
        (lambda body: body[: len(body) // 2], 400, "IncompleteBody"),
    ]:
        refused = await _put_signed_chunks(store, s3_url, "chunks/refused.bin", data, edit, trailer=trailer)
        assert (refused.status_code, f"<Code>{code}</Code>" in refused.text) == (status, True)
        assert not await store.tenant("acme").exists("chunks/refused.bin")


async def test_decoding_streams_without_gathering_the_body() -> None:
    """8 MiB in signed 1 MiB chunks, arriving in 64 KiB network pieces, come out as they arrive: no piece is
    larger than a network read, so memory is bounded by the reads, not by the chunk or the body."""
    data = os.urandom(8 * 1024 * 1024)
    body = _signed_body(_example_signer(), data, 1024 * 1024)
    largest, total = 0, 0
    async for piece in chunked.decoded(_pieces(body, 65536), chunked.SIGNED, None, _example_signer()):
        largest, total = max(largest, len(piece)), total + len(piece)
    assert (total, largest <= 65536) == (len(data), True)
