"""Queries on API tokens: insert, find by id, list, revoke. Only hashes of secrets reach this layer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from blobstore.db import driver_reads
from blobstore.db.engine import Database
from blobstore.db.models import tables

tokens = tables["tokens"]


@dataclass(frozen=True)
class TokenRow:
    """One row of ``tokens``; ``scopes`` is a comma-separated list."""

    id: str
    tenant: str
    name: str | None
    scopes: str
    secret_hash: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


#: The columns of a :class:`TokenRow`, in order.
TOKEN_COLUMNS = (
    tokens.c.id,
    tokens.c.tenant,
    tokens.c.name,
    tokens.c.scopes,
    tokens.c.secret_hash,
    tokens.c.created_at,
    tokens.c.expires_at,
    tokens.c.revoked_at,
)


async def insert_token(conn: AsyncConnection, row: TokenRow) -> None:
    """Record a new token."""
    await conn.execute(
        insert(tokens).values(
            id=row.id,
            tenant=row.tenant,
            name=row.name,
            scopes=row.scopes,
            secret_hash=row.secret_hash,
            created_at=row.created_at,
            expires_at=row.expires_at,
            revoked_at=row.revoked_at,
        )
    )


#: A token by id, built once (its compiled form and cache key are reused).
_FIND_TOKEN = select(*TOKEN_COLUMNS).where(tokens.c.id == bindparam("token_id"))
#: :data:`_FIND_TOKEN` for blobstore.db.driver_reads, with whether the token's tenant has a quota (NULL: the tenant
#: has no row yet).
_DRIVER_FIND = (
    f"SELECT {', '.join('k.' + column.name for column in TOKEN_COLUMNS)}, "
    "(SELECT t.max_bytes IS NOT NULL OR t.max_objects IS NOT NULL FROM tenants t WHERE t.name = k.tenant) "
    "FROM tokens k WHERE k.id = ?"
)


@dataclass(frozen=True)
class TokenLookup:
    """A token's row, and whether its tenant has a quota (what a put needs to know before reading its body)."""

    row: TokenRow
    #: True if the tenant has a limit of bytes or objects (blobstore.accounting.quotas).
    quota_set: bool


async def find_token(conn: AsyncConnection, token_id: str) -> TokenRow | None:
    """The token with this id, revoked or not; None if there is none."""
    row = (await conn.execute(_FIND_TOKEN, {"token_id": token_id})).first()
    return None if row is None else TokenRow(*row)


async def lookup_token(database: Database, token_id: str) -> TokenLookup | None:
    """:func:`find_token` as one statement on a driver connection (blobstore.db.driver_reads): the lookup every
    authenticated request makes, with whether the token's tenant has a quota. A read, no lock; it sees every
    change (a revocation, a quota set) committed before it."""
    row = await driver_reads.fetch_row(database, _DRIVER_FIND, (token_id,))
    if row is None:
        return None
    return TokenLookup(TokenRow(*driver_reads.times_as_utc(row[:-1], first=5)), bool(row[-1]))


async def list_tokens(conn: AsyncConnection, tenant: str | None) -> list[TokenRow]:
    """Every token (or every token of ``tenant``), by tenant and creation time."""
    query = select(*TOKEN_COLUMNS).order_by(tokens.c.tenant, tokens.c.created_at, tokens.c.id)
    if tenant is not None:
        query = query.where(tokens.c.tenant == tenant)
    return [TokenRow(*row) for row in await conn.execute(query)]


async def revoke_token(conn: AsyncConnection, token_id: str, now: datetime) -> None:
    """Mark the token revoked at ``now`` unless it already is."""
    await conn.execute(
        update(tokens).where(tokens.c.id == token_id, tokens.c.revoked_at.is_(None)).values(revoked_at=now)
    )
