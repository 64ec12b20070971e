"""Queries of lifecycle expiry: tenants' rules (``lifecycle_rules``) and the keys they, or the keys' own
``expires_at``, have expired (blobstore.maintenance.lifecycle decides and deletes)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, delete, false, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from blobstore.db.catalog import dialect_insert, prefix_upper_bound, refs, tenants
from blobstore.db.models import tables
from blobstore.model.lifecycle import Rule

rules_table = tables["lifecycle_rules"]
uploads = tables["multipart_uploads"]


@dataclass(frozen=True)
class Candidate:
    """A reference that may have expired: when it was last written, its own expiry and its size."""

    key: str
    written_at: datetime
    expires_at: datetime | None
    size: int


async def set_rule(
    conn: AsyncConnection, tenant: int, prefix: str, now: datetime, actions: Mapping[str, int | str | None]
) -> None:
    """Set the ``actions`` (seconds, or a transition's storage class; None: never) of the rule of ``prefix`` of
    ``tenant``, creating it if need be (with the actions not given None) and keeping the actions not given of a
    rule that exists."""
    values: dict[str, object] = {"tenant_id": tenant, "prefix": prefix, "created_at": now}
    values.update({str(name): seconds for name, seconds in actions.items()})
    upsert = dialect_insert(conn, rules_table).values(**values)
    await conn.execute(upsert.on_conflict_do_update(index_elements=["tenant_id", "prefix"], set_=dict(actions)))


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
        select(
            tenants.c.name,
            rules_table.c.prefix,
            rules_table.c.expire_after,
            rules_table.c.abort_multipart_after,
            rules_table.c.transition_after,
            rules_table.c.storage_class,
        )
        .join(tenants, tenants.c.id == rules_table.c.tenant_id)
        .order_by(tenants.c.name, rules_table.c.prefix)
    )
    if tenant is not None:
        query = query.where(tenants.c.name == tenant, _under(under))
    return [Rule(*row) for row in await conn.execute(query)]


async def stale_uploads(
    conn: AsyncConnection, tenant: int, bucket: str, prefix: str, cutoff: datetime, *, after_id: str, limit: int
) -> list[tuple[str, str]]:
    """(upload id, key) of up to ``limit`` of the tenant's multipart uploads in progress in ``bucket`` whose keys
    start with ``prefix``, untouched since before ``cutoff``, with ids after ``after_id``, by id."""
    query = (
        select(uploads.c.id, uploads.c.key)
        .where(
            uploads.c.tenant_id == tenant,
            uploads.c.bucket == bucket,
            uploads.c.key.startswith(prefix, autoescape=True),
            uploads.c.touched_at < cutoff,
            uploads.c.completed_at.is_(None),
            uploads.c.id > after_id,
        )
        .order_by(uploads.c.id)
        .limit(limit)
    )
    return [(row[0], row[1]) for row in await conn.execute(query)]


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
    by_rules = (_expired_by(rule.prefix, rule.expire_after, now) for rule in tenant_rules if rule.expire_after)
    expired = or_(refs.c.expires_at <= now, *by_rules)
    query = select(refs.c.key, refs.c.created_at, refs.c.expires_at, refs.c.size).where(
        refs.c.tenant_id == tenant, expired
    )
    if after is not None:
        query = query.where(refs.c.key > after)
    if keys is not None:
        query = query.where(refs.c.key.in_(sorted(keys)))
    rows = await conn.execute(query.order_by(refs.c.key).limit(limit))
    return [Candidate(*row) for row in rows]


def _expired_by(prefix: str, expire_after: int, now: datetime) -> ColumnElement[bool]:
    return and_(_key_under(prefix), refs.c.created_at <= now - timedelta(seconds=expire_after))


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
