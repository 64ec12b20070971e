"""The conditional-write headers of PUT and DELETE, parsed into ``Tenant``'s arguments (RFC 9110 section 13).

``If-Match`` compares strongly: a weak tag (``W/"..."``) or a tag that is no digest can match nothing, so
it is dropped; an If-Match left with no tag fails (412) whatever the key holds, once the request is
otherwise valid. An ``If-Unmodified-Since`` that is not an HTTP date is ignored, as RFC 9110 says.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Header

from blobstore.model.preconditions import ANY, parse_http_date

IfMatch = Annotated[
    str | None,
    Header(
        alias="if-match",
        description='Write only if the key holds one of these ETags ("<digest>", ...), or exists (*); else 412.',
    ),
]
IfUnmodifiedSince = Annotated[
    str | None,
    Header(
        alias="if-unmodified-since",
        description="Write only if the key was not written after this HTTP date (ignored with If-Match); else 412.",
    ),
]

_STRONG_DIGEST_TAG = re.compile(r'"([0-9a-f]{64})"')


@dataclass(frozen=True)
class WriteConditions:
    """The ``if_match`` and ``if_unmodified_since`` arguments of ``Tenant.put`` and ``Tenant.delete``."""

    if_match: list[str] | None
    if_unmodified_since: datetime | None


def write_conditions(if_match: str | None, if_unmodified_since: str | None) -> WriteConditions:
    """The arguments the headers ask for."""
    return WriteConditions(_digests(if_match), parse_http_date(if_unmodified_since))


def _digests(header: str | None) -> list[str] | None:
    if header is None:
        return None
    if header.strip() == ANY:
        return [ANY]
    return [found[1] for tag in header.split(",") if (found := _STRONG_DIGEST_TAG.fullmatch(tag.strip()))]
