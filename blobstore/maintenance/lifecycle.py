"""Lifecycle expiry: tenants' rules by key prefix, and the run that deletes expired keys (docs/lifecycle.md).

When a key expires is blobstore.model.lifecycle.expiry_of. A run fixes ``now`` from the store's clock, then
walks each tenant that has rules or keys of their own expiry in key order, ``batch`` candidates at a time
(blobstore.db.lifecycle.candidates, a read); each batch's expired keys are deleted in one transaction that
locks the tenant, reads the keys and the tenant's rules again, and deletes only those still expired (a key
written again meanwhile is younger and stays), as ordinary deletes (blobstore.db.binding.unbind): references
released, quota freed, and the bytes left to GC once no reference holds them. A dry run reads the same batches
and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncConnection

from blobstore.db import binding, catalog
from blobstore.db import lifecycle as queries
from blobstore.errors import InvalidInput
from blobstore.model.durations import MAX_SECONDS
from blobstore.model.keys import validate_prefix, validate_tenant
from blobstore.model.lifecycle import Rule, expiry_of

if TYPE_CHECKING:
    from blobstore.core.context import Core

#: Candidates read, and at most keys deleted in one transaction, per batch by default.
DEFAULT_BATCH = 500
#: The largest batch a run takes.
MAX_BATCH = 10_000


@dataclass
class TenantExpiry:
    """What a run expired of one tenant: keys and their (logical) bytes."""

    keys: int = 0
    bytes: int = 0


@dataclass
class ExpiryStats:
    """What a lifecycle run did (or, for a dry run, would do), per tenant."""

    dry_run: bool
    now: datetime
    tenants: dict[str, TenantExpiry] = field(default_factory=dict)
    #: Transactions that deleted keys (a dry run: batches that found some).
    batches: int = 0

    @property
    def keys(self) -> int:
        return sum(each.keys for each in self.tenants.values())

    @property
    def bytes(self) -> int:
        return sum(each.bytes for each in self.tenants.values())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "dry_run": self.dry_run,
            "now": self.now.isoformat(),
            "keys_expired": self.keys,
            "bytes_expired": self.bytes,
            "batches": self.batches,
            "tenants": {name: {"keys": each.keys, "bytes": each.bytes} for name, each in self.tenants.items()},
        }


async def set_rule(core: Core, tenant: str, prefix: str, expire_after: int) -> Rule:
    """Make ``tenant``'s keys under ``prefix`` expire ``expire_after`` seconds after they were last written,
    replacing the rule of that prefix if there is one (the tenant is created if it never stored anything)."""
    rule = Rule(validate_tenant(tenant), validate_prefix(prefix), validate_expire_after(expire_after))

    async def work(conn: AsyncConnection) -> None:
        now = core.clock()
        locked = await catalog.lock_tenant(conn, rule.tenant, now, create=True)
        assert locked is not None, "created"
        await queries.set_rule(conn, locked.id, rule.prefix, rule.expire_after, now)

    await core.database.transaction(work)
    return rule


async def remove_rule(core: Core, tenant: str, prefix: str) -> bool:
    """Remove ``tenant``'s rule of exactly ``prefix``; True if there was one."""
    validate_tenant(tenant)
    validate_prefix(prefix)

    async def work(conn: AsyncConnection) -> bool:
        found = await catalog.tenant_id(conn, tenant)
        return found is not None and await queries.remove_rule(conn, found, prefix)

    return await core.database.transaction(work)


async def replace_rules(core: Core, tenant: str, under: str, wanted: dict[str, int]) -> None:
    """Make ``wanted`` (prefix: expire_after) the tenant's rules whose prefix starts with ``under``, at once:
    the rules of an S3 bucket's lifecycle configuration (every prefix must start with ``under``)."""
    validate_tenant(tenant)
    for prefix, expire_after in wanted.items():
        if not validate_prefix(prefix).startswith(under):
            raise InvalidInput(f"prefix {prefix!r} is not under {under!r}")
        validate_expire_after(expire_after)

    async def work(conn: AsyncConnection) -> None:
        now = core.clock()
        locked = await catalog.lock_tenant(conn, tenant, now, create=True)
        assert locked is not None, "created"
        await queries.remove_rules_under(conn, locked.id, under)
        for prefix, expire_after in wanted.items():
            await queries.set_rule(conn, locked.id, prefix, expire_after, now)

    await core.database.transaction(work)


async def rules(core: Core, tenant: str | None = None, *, under: str = "") -> list[Rule]:
    """Every tenant's rules, or ``tenant``'s (those whose prefix starts with ``under``), by tenant then prefix."""
    if tenant is not None:
        validate_tenant(tenant)
    return await core.database.read(lambda conn: queries.rules(conn, tenant, under=under))


def validate_expire_after(value: object) -> int:
    """``expire_after`` in whole seconds, from 1 to 100 years (InvalidInput otherwise)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SECONDS:
        raise InvalidInput(f"expire_after must be whole seconds from 1 to {MAX_SECONDS}, not {value!r}")
    return value


async def expire(core: Core, *, dry_run: bool = False, batch: int = DEFAULT_BATCH) -> ExpiryStats:
    """Delete every expired key of every tenant (a dry run: count them), ``batch`` keys per transaction."""
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= MAX_BATCH:
        raise InvalidInput(f"batch must be a whole number from 1 to {MAX_BATCH}, not {batch!r}")
    stats = ExpiryStats(dry_run, core.clock())
    for tenant in await core.database.read(lambda conn: queries.tenants_to_expire(conn, stats.now)):
        await _expire_tenant(core, tenant, stats, batch)
    return stats


async def _expire_tenant(core: Core, tenant: str, stats: ExpiryStats, batch: int) -> None:
    """Expire ``tenant``'s keys, one batch of candidates at a time, in key order."""
    after: str | None = None
    while page := await core.database.read(
        partial(_expired_page, tenant=tenant, now=stats.now, after=after, batch=batch)
    ):
        last, expired = page
        if expired:
            if not stats.dry_run:
                keys = [each.key for each in expired]
                expired = await core.database.transaction(
                    partial(_delete_expired, tenant=tenant, keys=keys, now=stats.now)
                )
            stats.batches += 1
            counted = stats.tenants.setdefault(tenant, TenantExpiry())
            counted.keys += len(expired)
            counted.bytes += sum(each.size for each in expired)
        after = last


async def _expired_page(
    conn: AsyncConnection, *, tenant: str, now: datetime, after: str | None, batch: int
) -> tuple[str, list[queries.Candidate]] | None:
    """The last key of the next page of ``batch`` candidates after ``after``, and those of them expired at
    ``now``; None when there are no more."""
    found = await catalog.tenant_id(conn, tenant)
    if found is None:
        return None
    tenant_rules = await queries.rules(conn, tenant)
    candidates = await queries.candidates(conn, found, tenant_rules, now, after=after, limit=batch)
    if not candidates:
        return None
    return candidates[-1].key, [each for each in candidates if _has_expired(each, tenant_rules, now)]


def _has_expired(candidate: queries.Candidate, tenant_rules: list[Rule], now: datetime) -> bool:
    expiry = expiry_of(candidate.key, candidate.written_at, candidate.expires_at, tenant_rules)
    return expiry is not None and expiry <= now


async def _delete_expired(
    conn: AsyncConnection, *, tenant: str, keys: list[str], now: datetime
) -> list[queries.Candidate]:
    """Under the tenant's lock, delete those of ``keys`` still expired (read again: a key written meanwhile
    is younger); the references deleted."""
    locked = await catalog.lock_tenant(conn, tenant, now, create=False)
    if locked is None:
        return []
    tenant_rules = await queries.rules(conn, tenant)
    current = await queries.candidates(conn, locked.id, tenant_rules, now, after=None, limit=len(keys), keys=keys)
    expired = [each for each in current if _has_expired(each, tenant_rules, now)]
    if expired:
        await binding.unbind(conn, tenant, [each.key for each in expired], now)
    return expired
