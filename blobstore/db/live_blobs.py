"""Which of a set of digests a dedup scope already holds as live blobs: the store-wide view an import plans with."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from blobstore.db.catalog import LIVE, blobs

#: Digests per query (well under every database's bound-parameter limit).
_BATCH = 500


async def live_digests(conn: AsyncConnection, scope: str, digests: Iterable[str]) -> set[str]:
    """The digests among ``digests`` that have a live blob in dedup ``scope``."""
    wanted = sorted(set(digests))
    held: set[str] = set()
    for start in range(0, len(wanted), _BATCH):
        batch = wanted[start : start + _BATCH]
        query = select(blobs.c.digest).where(blobs.c.scope == scope, blobs.c.state == LIVE, blobs.c.digest.in_(batch))
        held.update((await conn.execute(query)).scalars())
    return held
