"""What a node with a spool remembers of an object-storage outage, so its puts go straight to the spool instead
of each one waiting through the storage's own retries first (docs/spool.md, "The outage remembered").

Object storage that does not answer fails a write only after its client's bounded retries (about 15 s with
botocore's defaults against a dead endpoint). During an outage every put would wait that long before it is
spooled; with the outage remembered, only one put per :data:`MEMORY_SECONDS` does.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from blobstore.errors import StorageUnavailable

T = TypeVar("T")

#: Seconds after object storage failed a write during which puts are spooled at once.
MEMORY_SECONDS = 10.0


class OutageMemory:
    """When object storage last failed one of this process's writes with StorageUnavailable.

    For :data:`MEMORY_SECONDS` after that, :meth:`spool_at_once` is true. Then one write at a time tries object
    storage again (:meth:`tried`; the others still spool at once): its success forgets the outage, its
    failure starts the memory anew. A drain that reaches object storage forgets it too (:meth:`recovered`).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._failed_at: float | None = None
        self._retrying = False

    def spool_at_once(self) -> bool:
        """Whether a put should skip object storage and write into the spool now."""
        if self._failed_at is None:
            return False
        return self._retrying or self._clock() - self._failed_at < MEMORY_SECONDS

    async def tried(self, write: Callable[[], Awaitable[T]]) -> T | None:
        """``write()``'s result (a write to object storage), or None (spool instead) without calling it while the
        outage is remembered, or when it raised StorageUnavailable, which is then remembered. Its success
        forgets the outage. While one write tries again after an outage, the others get None at once."""
        if self.spool_at_once():
            return None
        retry = self._failed_at is not None
        if retry:
            self._retrying = True
        try:
            result = await write()
        except StorageUnavailable:
            self.failed()
            return None
        finally:
            if retry:
                self._retrying = False
        self.recovered()
        return result

    def failed(self) -> None:
        """Object storage did not answer just now."""
        self._failed_at = self._clock()

    def recovered(self) -> None:
        """Object storage answered: puts try it first again."""
        self._failed_at = None
