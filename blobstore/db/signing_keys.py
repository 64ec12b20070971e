"""Queries on the signing keys of signed URLs: the current key, one key by id, rotation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from blobstore.db.models import tables

signing_keys = tables["signing_keys"]


@dataclass(frozen=True)
class SigningKeyRow:
    """One row of ``signing_keys``; ``secret`` is hex, ``retired_at`` is None for the current key."""

    id: str
    secret: str
    created_at: datetime
    retired_at: datetime | None


_COLUMNS = (signing_keys.c.id, signing_keys.c.secret, signing_keys.c.created_at, signing_keys.c.retired_at)


async def current_key(conn: AsyncConnection) -> SigningKeyRow | None:
    """The newest key not retired, or None if there is none."""
    query = (
        select(*_COLUMNS)
        .where(signing_keys.c.retired_at.is_(None))
        .order_by(signing_keys.c.created_at.desc(), signing_keys.c.id.desc())
        .limit(1)
    )
    row = (await conn.execute(query)).first()
    return None if row is None else SigningKeyRow(*row)


async def find_key(conn: AsyncConnection, key_id: str) -> SigningKeyRow | None:
    """The key with this id, retired or not; None if there is none."""
    row = (await conn.execute(select(*_COLUMNS).where(signing_keys.c.id == key_id))).first()
    return None if row is None else SigningKeyRow(*row)


async def insert_key(conn: AsyncConnection, row: SigningKeyRow) -> None:
    """Record a new key."""
    await conn.execute(
        insert(signing_keys).values(id=row.id, secret=row.secret, created_at=row.created_at, retired_at=row.retired_at)
    )


async def retire_keys(conn: AsyncConnection, now: datetime, forget_before: datetime) -> int:
    """Retire every current key at ``now`` and delete those retired before ``forget_before``; the number deleted."""
    await conn.execute(update(signing_keys).where(signing_keys.c.retired_at.is_(None)).values(retired_at=now))
    result = await conn.execute(delete(signing_keys).where(signing_keys.c.retired_at < forget_before))
    return int(result.rowcount)
