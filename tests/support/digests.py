"""The digest blobstore gives bytes (BLAKE3, hex), for tests that predict keys, objects and answers."""

from __future__ import annotations

from blobstore.core.ingest import new_hasher


def digest_of(data: bytes) -> str:
    """The hex BLAKE3 digest of ``data``, as a put of it reports."""
    hasher = new_hasher()
    hasher.update(data)
    return str(hasher.hexdigest())
