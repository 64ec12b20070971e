"""Queries of lifecycle expiry: tenants' rules (``lifecycle_rules``) and the keys they, or the keys' own
``expires_at``, have expired (blobstore.maintenance.lifecycle decides and deletes)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, delete, false, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from blobstore.db.catalog import dialect_insert, prefix_upper_bound, refs, tenants
from blobstore.db.models import tables
from blobstore.model.lifecycle import Rule

rules_table = tables["lifecycle_rules"]


@dataclass(frozen=True)
class Candidate:
    """A reference that may have expired: when it was last written, its own expiry and its size."""

    key: str
    written_at: datetime
    expires_at: datetime | None
    size: int


async def set_rule(conn: AsyncConnection, tenant: int, prefix: str, expire_after: int, now: datetime) -> None:
    """Make ``prefix`` of ``tenant`` expire after ``expire_after`` seconds, replacing its rule if it has one."""
    values = {"tenant_id": tenant, "prefix": prefix, "expire_after": expire_after, "created_at": now}
    upsert = dialect_insert(conn, rules_table).values(**values)
    await conn.execute(upsert.on_conflict_do_update(index_elements=["tenant_id", "prefix"], set_=values))


async def remove_rule(conn: AsyncConnection, tenant: int, prefix: str) -> bool:
    """Remove the rule of ``prefix`` of ``tenant``; True if there was one."""
    condition = and_(rules_table.c.tenant_id == tenant, rules_table.c.prefix == prefix)
    result = await conn.execute(delete(rules_table).where(condition))
    return bool(result.rowcount)


async def remove_rules_under(conn: AsyncConnection, tenant: int, prefix: str) -> int:
    """Remove every rule of ``tenant`` whose prefix starts with ``prefix``; how many there were."""
    result = await conn.execute(delete(rules_table).where(rules_table.c.tenant_id == tenant, _under(prefix)))
    return int(result.rowcount)


async def rules(conn: AsyncConnection, tenant: str | None = None, *, under: str = "") -> list[Rule]:
    """Every rule, or those of ``tenant`` (whose prefix starts with ``under``), by tenant then prefix."""
    query = (
        select(tenants.c.name, rules_table.c.prefix, rules_table.c.expire_after)
        .join(tenants, tenants.c.id == rules_table.c.tenant_id)
        .order_by(tenants.c.name, rules_table.c.prefix)
    )
    if tenant is not None:
        query = query.where(tenants.c.name == tenant, _under(under))
    return [Rule(*row) for row in await conn.execute(query)]


async def tenants_to_expire(conn: AsyncConnection, now: datetime) -> list[str]:
    """The tenants that have rules or a key whose own expiry has passed, by name."""
    with_rules = select(rules_table.c.tenant_id)
    with_own = select(refs.c.tenant_id).where(refs.c.expires_at <= now)
    query = select(tenants.c.name).where(tenants.c.id.in_(with_rules.union(with_own))).order_by(tenants.c.name)
    return list((await conn.execute(query)).scalars())


async def candidates(
    conn: AsyncConnection,
    tenant: int,
    tenant_rules: Sequence[Rule],
    now: datetime,
    *,
    after: str | None,
    limit: int,
    keys: Collection[str] | None = None,
) -> list[Candidate]:
    """Up to ``limit`` of the tenant's references, in key order after ``after`` (or among ``keys``), whose own
    expiry has passed or that were written before ``now`` less the ``expire_after`` of some rule they match.

    A superset of the expired ones: a key under a longer prefix whose rule keeps it longer is among them too;
    the caller decides with blobstore.model.lifecycle.expiry_of."""
    expired = or_(refs.c.expires_at <= now, *(_expired_by(rule, now) for rule in tenant_rules))
    query = select(refs.c.key, refs.c.created_at, refs.c.expires_at, refs.c.size).where(
        refs.c.tenant_id == tenant, expired
    )
    if after is not None:
        query = query.where(refs.c.key > after)
    if keys is not None:
        query = query.where(refs.c.key.in_(sorted(keys)))
    rows = await conn.execute(query.order_by(refs.c.key).limit(limit))
    return [Candidate(*row) for row in rows]


def _expired_by(rule: Rule, now: datetime) -> ColumnElement[bool]:
    return and_(_key_under(rule.prefix), refs.c.created_at <= now - timedelta(seconds=rule.expire_after))


def _key_under(prefix: str) -> ColumnElement[bool]:
    """The reference's key starts with ``prefix``, as a key range."""
    upper = prefix_upper_bound(prefix)
    if not prefix:
        return refs.c.key.is_not(None)
    return and_(refs.c.key >= prefix, refs.c.key < upper) if upper is not None else refs.c.key >= prefix


def _under(prefix: str) -> ColumnElement[bool]:
    """The rule's prefix starts with ``prefix``, as a range."""
    if not prefix:
        return ~false()
    upper = prefix_upper_bound(prefix)
    column = rules_table.c.prefix
    return and_(column >= prefix, column < upper) if upper is not None else column >= prefix
