"""Streaming reads that check the bytes against their digest."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable

from blobstore.core.ingest import new_hasher
from blobstore.errors import BlobStoreError, IntegrityError, ObjectMissing, StorageUnavailable
from blobstore.storage.base import ObjectStorage


async def verified_chunks(
    storage: ObjectStorage,
    object_key: str,
    *,
    key: str,
    digest: str,
    size: int,
    byte_range: tuple[int, int] | None,
    missing: Callable[[], Awaitable[BlobStoreError]],
) -> AsyncGenerator[bytes, None]:
    """Yield the stored bytes of ``key``; raise IntegrityError if they are short or (on a whole read)
    do not hash to ``digest``, and the error ``missing()`` returns if the object is gone.

    A whole read hashes as it streams, so the error comes at the end, after the
    chunks; callers that must never see wrong bytes buffer (``Tenant.get`` does).
    ``byte_range`` must already be clamped to the object.
    """
    expected = size if byte_range is None else byte_range[1] - byte_range[0] + 1
    hasher = new_hasher() if byte_range is None else None
    received = 0
    try:
        async for chunk in storage.read(object_key, byte_range):
            received += len(chunk)
            if received > expected:
                raise IntegrityError(f"stored object for {key!r} is longer than its recorded size {size}")
            if hasher is not None:
                hasher.update(chunk)
            yield chunk
    except ObjectMissing:
        raise await missing() from None
    except StorageUnavailable:
        # A range past the end of a shrunken object fails as a request error on S3 (416);
        # the object's real size tells a damaged object from an unreachable storage.
        if byte_range is None or received:
            raise
        actual = await storage.stat(object_key)
        if actual is None:
            raise await missing() from None
        if actual.size != size:
            raise IntegrityError(
                f"stored object for {key!r} is {actual.size} bytes, not its recorded size {size}"
            ) from None
        raise
    if received != expected:
        raise IntegrityError(f"stored object for {key!r} is truncated: {received} of {expected} bytes")
    if hasher is not None and hasher.hexdigest() != digest:
        raise IntegrityError(f"stored object for {key!r} is corrupted: its bytes do not hash to {digest}")
