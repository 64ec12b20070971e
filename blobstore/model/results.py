"""What the API returns: plain, immutable records that serialise to JSON."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class BlobInfo:
    """A key as its tenant sees it.

    Put and copy only: ``deduplicated`` is true when this tenant already held the bytes, ``replaced`` when
    the key held a value the write replaced (decided in the write's own transaction; the HTTP API answers
    it as 200 rather than 201, and :meth:`to_dict` leaves it out).

    ``headers`` are the response headers stored through the S3 API (Content-Disposition, Content-Encoding,
    Content-Language, Cache-Control, Expires; lowercase names): S3 GETs return them; the native HTTP API
    neither sets nor returns them (:meth:`to_dict` leaves them out), so only the embedded store reports them.
    """

    tenant: str
    key: str
    digest: str
    size: int
    content_type: str | None
    metadata: dict[str, str]
    created_at: datetime
    deduplicated: bool = False
    replaced: bool = False
    headers: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``created_at`` in ISO 8601)."""
        return {
            "tenant": self.tenant,
            "key": self.key,
            "digest": self.digest,
            "size": self.size,
            "content_type": self.content_type,
            "metadata": dict(self.metadata),
            "created_at": self.created_at.isoformat(),
            "deduplicated": self.deduplicated,
        }


@dataclass(frozen=True)
class Page:
    """One page of a listing; pass ``next_after`` as ``after`` for the next page (None: no more)."""

    items: list[BlobInfo] = field(default_factory=list)
    next_after: str | None = None

    def __iter__(self) -> Iterator[BlobInfo]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)
