"""Where things live in object storage, and how to tell the store's own objects from anything else."""

from __future__ import annotations

import re
import secrets

#: Prefix of every blob object; everything outside it is the store's own (the identity marker).
OBJECT_PREFIX = "data/"

#: The exact shape of every blob object key the store writes: ``data/ab/cd/<digest>.<token>``,
#: where ``ab`` and ``cd`` are the digest's first four hex digits.
_OBJECT_KEY = re.compile(r"data/([0-9a-f]{2})/([0-9a-f]{2})/(\1\2[0-9a-f]{60})\.[0-9a-f]{32}")


def object_key_for(digest: str) -> str:
    """A fresh storage key for one upload of ``digest``: fanned out by digest, unique per upload.

    Uniqueness is what makes GC safe: a re-upload of the same bytes never lands
    on a key that a concurrent GC run is deleting (docs/gc-protocol.md).
    """
    return f"{OBJECT_PREFIX}{digest[:2]}/{digest[2:4]}/{digest}.{secrets.token_hex(16)}"


def is_object_key(key: str) -> bool:
    """True if ``key`` has exactly the shape :func:`object_key_for` makes.

    GC and fsck consider nothing else: another application's files, another store's
    objects (a store nested below this one has an extra ``data/`` level) and names that
    are not even valid text never match, so they are never deleted or reported as ours.
    """
    return _OBJECT_KEY.fullmatch(key) is not None
