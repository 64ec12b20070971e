"""Where things live in object storage."""

from __future__ import annotations

import secrets

#: Prefix of every blob object; everything outside it is the store's own (the identity marker).
OBJECT_PREFIX = "data/"


def object_key_for(digest: str) -> str:
    """A fresh storage key for one upload of ``digest``: fanned out by digest, unique per upload.

    Uniqueness is what makes GC safe: a re-upload of the same bytes never lands
    on a key that a concurrent GC run is deleting (docs/gc-protocol.md).
    """
    return f"{OBJECT_PREFIX}{digest[:2]}/{digest[2:4]}/{digest}.{secrets.token_hex(16)}"
