"""Words for counts in messages people read."""

from __future__ import annotations


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``1 blob``, ``0 blobs``, ``1,234 blobs``: the count with thousands separators and the noun agreeing with
    it (``plural`` where adding an ``s`` is wrong)."""
    return f"{count:,} {noun if count == 1 else plural or noun + 's'}"
