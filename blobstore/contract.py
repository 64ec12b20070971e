"""``TenantAPI``: the one contract of a tenant handle, which ``Tenant`` (in process) and ``BlobClient`` (over
HTTP) both implement completely, with the same signatures, results and errors.

Code that works on a tenant takes a ``TenantAPI`` and runs unchanged on either; the semantics suite
(tests/store/test_store_semantics.py, tests/store/test_batch_transports.py) holds both to it. Every method raises
only ``BlobStoreError`` subclasses; over HTTP also ``Unauthorized`` and ``Forbidden`` (the token), and
``StorageUnavailable`` when the server cannot be reached.
"""

from __future__ import annotations

import builtins
from collections.abc import Collection, Iterable
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from blobstore.auth.signing import DEFAULT_EXPIRY

if TYPE_CHECKING:
    from blobstore.accounting.holdings import Usage
    from blobstore.auth.signing import SignedUrl
    from blobstore.core.ingest import PutData
    from blobstore.model.results import BlobInfo, Page
    from blobstore.store import BlobStream, DeleteOutcome, PutItem, PutOutcome, StatOutcome


class TenantAPI(Protocol):
    """Every read and write of one tenant. Another tenant's keys and bytes are indistinguishable from missing ones."""

    @property
    def name(self) -> str:
        """The tenant."""
        ...

    # --- writes ------------------------------------------------------------------------------------

    async def put(
        self,
        key: str,
        data: PutData | None = None,
        *,
        digest: str | None = None,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
        if_absent: bool = False,
        if_match: str | Collection[str] | None = None,
        if_unmodified_since: datetime | None = None,
        expires_in: int | None = None,
    ) -> BlobInfo:
        """Store ``data`` under ``key``, replacing what was there (``replaced`` says so; ``if_absent``:
        AlreadyExists instead). With ``data`` None, put by digest: ``digest`` names bytes this tenant already
        holds (NotFound otherwise). With both, ``digest`` is an expectation (IntegrityError, nothing stored).
        ``if_match`` / ``if_unmodified_since``: PreconditionFailed, nothing stored, unless the key is in a
        version they accept, checked where the key is bound. ObjectTooLarge / QuotaExceeded: nothing stored.
        ``expires_in`` (whole seconds, 1 to 100 years; InvalidInput otherwise): the key expires that long after
        it is bound, whatever lifecycle rules say (docs/lifecycle.md); a later put without it clears it."""
        ...

    async def put_many(self, items: Iterable[PutItem]) -> builtins.list[PutOutcome]:
        """:meth:`put` of every item (data required), as if one after another: one outcome per item, in order,
        its BlobInfo or the BlobStoreError its put would have raised. A key may appear once (InvalidInput
        for a repeat). More than ``MAX_BATCH`` items: InvalidInput, and nothing is stored."""
        ...

    async def copy(self, src_key: str, dst_key: str, *, if_absent: bool = False) -> BlobInfo:
        """Make ``dst_key`` a new reference to ``src_key``'s bytes; no bytes move. NotFound if ``src_key``
        is missing; AlreadyExists with ``if_absent`` if ``dst_key`` exists."""
        ...

    async def delete(
        self,
        key: str,
        *,
        if_match: str | Collection[str] | None = None,
        if_unmodified_since: datetime | None = None,
    ) -> bool:
        """Delete ``key``; True if it existed. The bytes stay while any reference remains. The conditions as
        for :meth:`put` (with ``if_match``, a missing key fails too)."""
        ...

    async def delete_many(self, keys: Iterable[str]) -> builtins.list[DeleteOutcome]:
        """Delete every key at once; per key, in order: True if it existed (a repeat is False the second time),
        or its error (InvalidKey). More than ``MAX_BATCH`` keys: InvalidInput, and nothing is deleted."""
        ...

    # --- reads -------------------------------------------------------------------------------------

    async def stat(self, key: str) -> BlobInfo:
        """The key's digest, size, content type, metadata and creation time; NotFound if absent."""
        ...

    async def stat_many(self, keys: Iterable[str]) -> builtins.list[StatOutcome]:
        """:meth:`stat` of every key at once; per key, in order: its BlobInfo, or NotFound / InvalidKey.
        More than ``MAX_BATCH`` keys: InvalidInput."""
        ...

    async def exists(self, key: str) -> bool:
        """True if the key exists."""
        ...

    async def get(self, key: str) -> bytes:
        """The whole value, verified against its digest (IntegrityError otherwise)."""
        ...

    def open(self, key: str, byte_range: tuple[int, int] | None = None) -> AbstractAsyncContextManager[BlobStream]:
        """Stream the value, or the inclusive ``byte_range`` of it (clamped to its end; past the end: empty).
        A whole read ends in IntegrityError if the bytes do not hash to the digest; a ranged read raises it
        before the bytes of a frame that does not hash to its own (docs/frames.md)."""
        ...

    async def list(self, prefix: str = "", *, limit: int = 1000, after: str | None = None) -> Page:
        """Keys starting with ``prefix`` (literally), in code-point order, after ``after``; ``limit`` 1-1000
        (InvalidInput otherwise). ``next_after`` of the page is the ``after`` of the next (None: no more)."""
        ...

    async def missing(self, digests: Iterable[str]) -> builtins.list[str]:
        """Those of ``digests`` this tenant does not hold, in the order given, without repeats (bytes only other
        tenants hold are missing). At most 1,000 digests; InvalidInput for more or for a malformed one."""
        ...

    async def usage(self) -> Usage:
        """This tenant's own keys, logical bytes, limits and bytes read this UTC month (nothing shared)."""
        ...

    async def sign_url(
        self,
        key: str,
        method: str = "GET",
        *,
        expires_in: int = int(DEFAULT_EXPIRY.total_seconds()),
        content_length: int | None = None,
        content_type: str | None = None,
        digest: str | None = None,
        base_url: str | None = None,
    ) -> SignedUrl:
        """A URL that does ``method`` (GET or PUT) on ``key`` without a token for ``expires_in`` seconds (at
        most 7 days). A PUT may bind the body's length, content type and digest. The URL is under
        ``base_url``, where the HTTP API is served (its mount prefix included); None: ``BlobClient``'s server as
        it saw the request, or for ``Tenant``, which serves no HTTP, the path and query alone (``/v1/...``).
        A client's URL dies with its token; ``Tenant``'s with its signing key (``signing-key retire``)."""
        ...


if TYPE_CHECKING:  # mypy proves, on every run, that both handles implement the whole contract
    from blobstore.client import BlobClient
    from blobstore.store import Tenant

    def _implemented_by(tenant: Tenant, client: BlobClient) -> tuple[TenantAPI, TenantAPI]:
        return tenant, client
