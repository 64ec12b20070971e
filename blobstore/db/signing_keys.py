"""Queries on the signing keys of signed URLs: the current key, the keys that verify, rotation, retirement,
and the one read a verification needs. Secrets reach this layer sealed (blobstore.auth.sealing)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from blobstore.db.models import tables
from blobstore.db.tokens import TOKEN_COLUMNS, TokenRow, tokens

signing_keys = tables["signing_keys"]


@dataclass(frozen=True)
class SigningKeyRow:
    """One row of ``signing_keys``; ``superseded_at`` is None for the key that signs."""

    id: str
    sealed_secret: str
    created_at: datetime
    superseded_at: datetime | None


@dataclass(frozen=True)
class Verifier:
    """What checking one signed URL needs: its signing key, and the token that signed it if it names one
    (None when it names none, or a token that does not exist)."""

    key: SigningKeyRow
    token: TokenRow | None


_COLUMNS = (
    signing_keys.c.id,
    signing_keys.c.sealed_secret,
    signing_keys.c.created_at,
    signing_keys.c.superseded_at,
)
_NEWEST_FIRST = (signing_keys.c.created_at.desc(), signing_keys.c.id.desc())


async def current_key(conn: AsyncConnection) -> SigningKeyRow | None:
    """The newest key not superseded, or None if there is none."""
    query = select(*_COLUMNS).where(signing_keys.c.superseded_at.is_(None)).order_by(*_NEWEST_FIRST).limit(1)
    row = (await conn.execute(query)).first()
    return None if row is None else SigningKeyRow(*row)


async def list_keys(conn: AsyncConnection) -> list[SigningKeyRow]:
    """Every key that still verifies, newest first."""
    return [SigningKeyRow(*row) for row in await conn.execute(select(*_COLUMNS).order_by(*_NEWEST_FIRST))]


async def find_verifier(conn: AsyncConnection, key_id: str, token_id: str | None) -> Verifier | None:
    """The key ``key_id`` and the token ``token_id`` (if given) in one statement; None if there is no such key."""
    if token_id is None:
        key = (await conn.execute(select(*_COLUMNS).where(signing_keys.c.id == key_id))).first()
        return None if key is None else Verifier(SigningKeyRow(*key), None)
    joined = signing_keys.outerjoin(tokens, tokens.c.id == token_id)
    query = select(*_COLUMNS, *TOKEN_COLUMNS).select_from(joined).where(signing_keys.c.id == key_id)
    row = (await conn.execute(query)).first()
    if row is None:
        return None
    token = row[len(_COLUMNS) :]
    return Verifier(SigningKeyRow(*row[: len(_COLUMNS)]), None if token[0] is None else TokenRow(*token))


async def insert_key(conn: AsyncConnection, row: SigningKeyRow) -> None:
    """Record a new key."""
    await conn.execute(
        insert(signing_keys).values(
            id=row.id, sealed_secret=row.sealed_secret, created_at=row.created_at, superseded_at=row.superseded_at
        )
    )


async def supersede_keys(conn: AsyncConnection, now: datetime, forget_before: datetime) -> int:
    """Supersede every current key at ``now`` and delete those superseded before ``forget_before``;
    the number deleted."""
    await conn.execute(update(signing_keys).where(signing_keys.c.superseded_at.is_(None)).values(superseded_at=now))
    result = await conn.execute(delete(signing_keys).where(signing_keys.c.superseded_at < forget_before))
    return int(result.rowcount)


async def retire_key(conn: AsyncConnection, key_id: str) -> SigningKeyRow | None:
    """Delete the key ``key_id``: nothing it signed verifies any more. The row it was, or None if none."""
    row = (await conn.execute(delete(signing_keys).where(signing_keys.c.id == key_id).returning(*_COLUMNS))).first()
    return None if row is None else SigningKeyRow(*row)
