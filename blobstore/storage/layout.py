"""Where things live in object storage, and how to tell the store's own objects from anything else."""

from __future__ import annotations

import re
import secrets

#: Prefix of every blob object; everything outside it is the store's own (the identity marker).
OBJECT_PREFIX = "data/"

#: The exact shape of every blob object key the store writes: ``data/ab/<digest>.<token>``, where ``ab`` is
#: the digest's first two hex digits: 256 directories on a local disk, as restic and git fan out, so a store
#: soon stops creating (and syncing) a directory per new object.
_OBJECT_KEY = re.compile(r"data/([0-9a-f]{2})/\1[0-9a-f]{62}\.[0-9a-f]{32}")
#: The shape stores wrote before: ``data/ab/cd/<digest>.<token>`` (``cd``: the next two digits). Their rows
#: name those keys, so they are read, reclaimed and checked where they lie.
_TWO_LEVEL_OBJECT_KEY = re.compile(r"data/([0-9a-f]{2})/([0-9a-f]{2})/\1\2[0-9a-f]{60}\.[0-9a-f]{32}")
#: The fan-out directories every new object key starts with (blobstore.storage.base.ObjectStorage.prepare_prefixes).
FANOUT_PREFIXES = tuple(f"{OBJECT_PREFIX}{first:02x}/" for first in range(256))


def object_key_for(digest: str) -> str:
    """A fresh storage key for one upload of ``digest``: fanned out by digest, unique per upload.

    Uniqueness is what makes GC safe: a re-upload of the same bytes never lands
    on a key that a concurrent GC run is deleting (docs/gc-protocol.md).
    """
    return f"{OBJECT_PREFIX}{digest[:2]}/{digest}.{secrets.token_hex(16)}"


def is_object_key(key: str) -> bool:
    """True if ``key`` has exactly the shape :func:`object_key_for` makes, or the two-level one it made before.

    GC and fsck consider nothing else: another application's files, another store's
    objects (a store nested below this one has an extra ``data/`` level) and names that
    are not even valid text never match, so they are never deleted or reported as ours.
    """
    return _OBJECT_KEY.fullmatch(key) is not None or _TWO_LEVEL_OBJECT_KEY.fullmatch(key) is not None
