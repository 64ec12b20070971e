"""Egress metering: count the bytes a read hands to its caller, and record them once when the read ends."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import date
from typing import Self

from blobstore.db import egress
from blobstore.db.engine import Database

log = logging.getLogger(__name__)


class EgressMeter:
    """Wraps a read's chunks, counting the bytes that actually stream through."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks
        self.bytes = 0

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> bytes:
        chunk = await anext(self._chunks)
        self.bytes += len(chunk)
        return chunk

    async def record(self, database: Database, tenant: str, day: date) -> None:
        """Add the counted bytes to the tenant's egress on ``day``: one upsert, none for an empty read.

        Best effort: the read already succeeded, so a failure here is logged, not raised.
        """
        if self.bytes == 0:
            return
        nbytes, self.bytes = self.bytes, 0
        try:
            await database.transaction(lambda conn: egress.record(conn, tenant, day, nbytes))
        except Exception:
            log.warning("could not record %d bytes of egress for tenant %s", nbytes, tenant, exc_info=True)
