"""The ``Range`` request header (RFC 9110 section 14): one range of bytes, in any of its three forms.

``bytes=a-b`` (inclusive, clamped to the object), ``bytes=a-`` (from ``a`` to the
end) and ``bytes=-n`` (the last ``n`` bytes). A header with several ranges, another
unit or bad syntax is ignored, so the whole object is sent (RFC 9110 allows a
server to ignore any Range header; a single range is what download tools ask for).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from blobstore.errors import RangeNotSatisfiable

_RANGE = re.compile(r"\s*bytes\s*=\s*(\d{0,18})\s*-\s*(\d{0,18})\s*", re.IGNORECASE)
#: Larger offsets than any object can have; bigger numbers are clamped to it.
_MAX_OFFSET = 2**62


@dataclass(frozen=True)
class ByteRange:
    """A parsed single range: ``first``-``last`` (``last`` None: to the end), or the last ``suffix`` bytes."""

    first: int | None
    last: int | None
    suffix: int | None = None

    def resolve(self, size: int) -> tuple[int, int]:
        """The inclusive range within an object of ``size`` bytes; RangeNotSatisfiable if it has no byte of it."""
        if self.suffix is not None:
            if self.suffix == 0 or size == 0:
                raise RangeNotSatisfiable(f"no last {self.suffix} bytes in an object of {size} bytes", size)
            return max(0, size - self.suffix), size - 1
        assert self.first is not None
        if self.first >= size:
            raise RangeNotSatisfiable(f"the range starts at {self.first}, past the object's {size} bytes", size)
        return self.first, size - 1 if self.last is None else min(self.last, size - 1)

    def open_range(self) -> tuple[int, int] | None:
        """What to pass ``Tenant.open`` before the size is known (None: the size is needed first)."""
        if self.first is None:
            return None
        return self.first, _MAX_OFFSET if self.last is None else self.last


def parse_range(header: str | None) -> ByteRange | None:
    """The single byte range a ``Range`` header asks for; None for no header or one to ignore."""
    match = _RANGE.fullmatch(header) if header else None
    if match is None:
        return None
    first_text, last_text = match.groups()
    if not first_text:
        return ByteRange(None, None, suffix=min(int(last_text), _MAX_OFFSET)) if last_text else None
    first = min(int(first_text), _MAX_OFFSET)
    last = min(int(last_text), _MAX_OFFSET) if last_text else None
    if last is not None and last < first:
        return None
    return ByteRange(first, last)
