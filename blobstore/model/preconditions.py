"""Conditional writes (RFC 9110 section 13): what a put or delete expects of the key's current version.

A key's version is its digest (the ETag, :func:`blobstore.wire.etag`) and the time it was written (its
``created_at``, sent as Last-Modified). :func:`expect` turns a caller's ``if_match``,
``if_unmodified_since`` and ``if_absent`` into a :class:`Precondition` (InvalidInput if unusable);
:mod:`blobstore.db.binding` checks it against the key's row inside the transaction that binds or unbinds
the key, under the tenant's lock, so two writers that expect the same version cannot both win.

Evaluated in RFC 9110's order: If-Match (``*``: the key exists; digests: it holds one of them; a missing
key always fails), else If-Unmodified-Since (fails if the key was written after the date, compared in
whole seconds as HTTP dates are; a missing key has no date and passes), then ``if_absent`` (If-None-Match
``*``: fails with AlreadyExists if the key exists). Because the ETag is the digest, rewriting a key with
the same bytes keeps its ETag: If-Match then still passes, as the bytes it names are still there.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from blobstore.errors import AlreadyExists, InvalidInput, PreconditionFailed
from blobstore.model.keys import validate_digest

#: If-Match ``*``: any current version.
ANY = "*"


@dataclass(frozen=True)
class Version:
    """What a conditional write compares: the key's digest and when it was written."""

    digest: str
    written_at: datetime


@dataclass(frozen=True)
class Precondition:
    """What a write expects of its key (nothing, by default)."""

    #: If-Match: the digests one of which the key must hold (none: it fails), or ``{ANY}``; None: no If-Match.
    match: frozenset[str] | None = None
    #: If-Unmodified-Since (ignored when ``match`` is set).
    unmodified_since: datetime | None = None
    #: If-None-Match ``*``: the key must not exist.
    absent: bool = False

    def failure(self, key: str, current: Version | None) -> PreconditionFailed | None:
        """The error a write of ``key`` fails with when the key is at ``current`` (None: missing), or None."""
        if self.match is not None:
            if current is None:
                return PreconditionFailed(f"if_match: there is no key {key!r}")
            if ANY not in self.match and current.digest not in self.match:
                return PreconditionFailed(f"if_match: key {key!r} holds none of the versions named")
        elif self._written_after(current):
            return PreconditionFailed(f"if_unmodified_since: key {key!r} was written after {self.unmodified_since}")
        if self.absent and current is not None:
            return AlreadyExists(f"key {key!r} already exists")
        return None

    def _written_after(self, current: Version | None) -> bool:
        """If-Unmodified-Since fails: the key was written after the date (a missing key has no date)."""
        since = self.unmodified_since
        return since is not None and current is not None and _whole_seconds(current.written_at) > _whole_seconds(since)


#: A write that expects nothing.
UNCONDITIONAL = Precondition()


def expect(if_match: object = None, if_unmodified_since: object = None, *, if_absent: bool = False) -> Precondition:
    """The precondition of a write's arguments: ``if_match`` a digest, ``"*"`` or a collection of digests
    (an empty one matches no version, as an empty HTTP If-Match list); ``if_unmodified_since`` a
    timezone-aware datetime. InvalidInput otherwise."""
    if if_unmodified_since is not None and not (
        isinstance(if_unmodified_since, datetime) and if_unmodified_since.utcoffset() is not None
    ):
        raise InvalidInput(f"if_unmodified_since must be a timezone-aware datetime, not {if_unmodified_since!r}")
    return Precondition(_match(if_match), if_unmodified_since, bool(if_absent))


def _match(if_match: object) -> frozenset[str] | None:
    if if_match is None:
        return None
    tags = [if_match] if isinstance(if_match, str) else if_match
    if not isinstance(tags, Iterable) or isinstance(tags, bytes | bytearray):
        raise InvalidInput(f"if_match must be a digest, {ANY!r} or a collection of digests, not {if_match!r}")
    return frozenset(tag if tag == ANY else validate_digest(tag) for tag in tags)


def _whole_seconds(moment: datetime) -> int:
    return math.floor(moment.timestamp())


def parse_http_date(header: str | None) -> datetime | None:
    """An HTTP date (If-Unmodified-Since, If-Modified-Since) as an aware datetime; None for no header or one
    that does not parse, which RFC 9110 says to ignore (``-0000`` is UTC all the same)."""
    if header is None:
        return None
    try:
        moment = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    return moment if moment.utcoffset() is not None else moment.replace(tzinfo=UTC)
