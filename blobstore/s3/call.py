"""One authenticated S3 request as the handlers see it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from starlette.datastructures import Headers

from blobstore.s3.payload import CheckedBody
from blobstore.s3.router import Operation
from blobstore.store import BlobStore, Tenant

if TYPE_CHECKING:
    from blobstore.db.access_keys import KeyVersion
    from blobstore.model.results import BlobInfo
    from blobstore.model.s3_facts import S3Facts


@dataclass(frozen=True)
class Call:
    """The operation, the caller's tenant, the query, the headers and the (checked) body of one request."""

    store: BlobStore
    tenant: Tenant
    region: str
    operation: Operation
    params: dict[str, str]
    headers: Headers
    body: CheckedBody
    #: The scopes of the access key that signed the request.
    scopes: tuple[str, ...]
    #: When the caller's tenant created the request's bucket, read with the access key as the request was
    #: authenticated; None if the tenant has no bucket of that name (or the request names none).
    bucket_created_at: datetime | None = None
    #: False if the caller's tenant had no quota when the request was authenticated: a put then needs no read of
    #: its quota room before its body (the put's binding still checks any quota set since, atomically).
    quota_set: bool = True
    #: What the caller's tenant held under the request's object key, with its S3 facts, when the request was
    #: authenticated (blobstore.auth.access_keys.active); None if nothing.
    version: KeyVersion | None = None

    def facts_of(self, info: BlobInfo) -> S3Facts | None:
        """The S3 facts of ``info`` if it is the version the request's authentication read (its facts were read
        while it was the key's version); None if it may not be (then they must be looked up)."""
        if self.version is None or (self.version.digest, self.version.created_at) != (info.digest, info.created_at):
            return None
        return self.version.facts

    @property
    def bucket(self) -> str:
        """The request's bucket (bucket and object operations only)."""
        assert self.operation.bucket is not None
        return self.operation.bucket

    @property
    def key(self) -> str:
        """The request's object key in its bucket (object operations only)."""
        assert self.operation.key is not None
        return self.operation.key


def header_text(value: bytes) -> str:
    """A header value as the client signed it: SDKs send non-ASCII values (metadata) as UTF-8 and sign their text,
    so UTF-8 when the bytes are UTF-8, else Latin-1 (HTTP's own reading of a header byte)."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def header_value(text: str) -> str:
    """``text`` as a response header value that Starlette (which writes Latin-1) can send: itself if Latin-1 can
    carry it, else its UTF-8 bytes (as the client sent them)."""
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8").decode("latin-1")
    return text
