"""Lifecycle expiry: tenants' rules by key prefix, and the run that deletes expired keys (docs/lifecycle.md).

When a key expires is blobstore.model.lifecycle.expiry_of. A run fixes ``now`` from the store's clock, then
walks each tenant that has rules or keys of their own expiry in key order, ``batch`` candidates at a time
(blobstore.db.lifecycle.candidates, a read); each batch's expired keys are deleted in one transaction that
locks the tenant, reads the keys and the tenant's rules again, and deletes only those still expired (a key
written again meanwhile is younger and stays), as ordinary deletes (blobstore.db.binding.unbind): references
released, quota freed, and the bytes left to GC once no reference holds them. Then the tenant's S3 multipart
uploads untouched for their rule's ``abort_multipart_after`` are aborted, each in one transaction that checks
again, as GC aborts expired ones (blobstore.db.multipart.expire). A dry run reads the same batches and changes
nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncConnection

from blobstore.db import binding, catalog, multipart
from blobstore.db import lifecycle as queries
from blobstore.errors import InvalidInput
from blobstore.model.durations import MAX_SECONDS
from blobstore.model.keys import validate_prefix, validate_tenant
from blobstore.model.lifecycle import Rule, expiry_of, setting_for
from blobstore.model.transitions import validate_storage_class

if TYPE_CHECKING:
    from blobstore.core.context import Core

#: Candidates read, and at most keys deleted in one transaction, per batch by default.
DEFAULT_BATCH = 500
#: The largest batch a run takes.
MAX_BATCH = 10_000


@dataclass
class TenantExpiry:
    """What a run expired of one tenant: keys and their (logical) bytes, and S3 multipart uploads aborted."""

    keys: int = 0
    bytes: int = 0
    uploads_aborted: int = 0


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
            "uploads_aborted": sum(each.uploads_aborted for each in self.tenants.values()),
            "tenants": {name: asdict(each) for name, each in self.tenants.items()},
        }


async def set_rule(
    core: Core,
    tenant: str,
    prefix: str,
    *,
    expire_after: int | None = None,
    transition: tuple[int, str] | None = None,
) -> Rule:
    """Make ``tenant``'s keys under ``prefix`` expire ``expire_after`` seconds after they were last written,
    and/or let their blobs move to a colder storage class once cold (``transition``: seconds and class, see
    blobstore.model.transitions), in the rule of that prefix (created if need be; what is not given is kept).
    The tenant is created if it never stored anything."""
    validate_tenant(tenant)
    validate_prefix(prefix)
    actions: dict[str, int | str | None] = {}
    if expire_after is not None:
        actions["expire_after"] = validate_seconds(expire_after, "expire_after")
    if transition is not None:
        actions["transition_after"] = validate_seconds(transition[0], "transition_after")
        actions["storage_class"] = validate_storage_class(transition[1])
    if not actions:
        raise InvalidInput("a rule must set an expiry or a transition")

    async def work(conn: AsyncConnection) -> None:
        now = core.clock()
        locked = await catalog.lock_tenant(conn, tenant, now, create=True)
        assert locked is not None, "created"
        await queries.set_rule(conn, locked.id, prefix, now, actions)

    await core.database.transaction(work)
    [rule] = [rule for rule in await rules(core, tenant) if rule.prefix == prefix]
    return rule


async def remove_rule(core: Core, tenant: str, prefix: str) -> bool:
    """Remove ``tenant``'s rule of exactly ``prefix``; True if there was one."""
    validate_tenant(tenant)
    validate_prefix(prefix)

    async def work(conn: AsyncConnection) -> bool:
        found = await catalog.tenant_id(conn, tenant)
        return found is not None and await queries.remove_rule(conn, found, prefix)

    return await core.database.transaction(work)


async def replace_rules(core: Core, tenant: str, under: str, wanted: list[Rule]) -> None:
    """Make ``wanted`` the tenant's rules whose prefix starts with ``under``, at once: the rules of an S3 bucket's
    lifecycle configuration (every prefix must start with ``under``, and appear once; each rule sets an action; a
    transition names its storage class)."""
    validate_tenant(tenant)
    if len({rule.prefix for rule in wanted}) < len(wanted):
        raise InvalidInput("two rules have the same prefix")
    for rule in wanted:
        if not validate_prefix(rule.prefix).startswith(under):
            raise InvalidInput(f"prefix {rule.prefix!r} is not under {under!r}")
        if rule.expire_after is None and rule.abort_multipart_after is None and rule.transition_after is None:
            raise InvalidInput(f"the rule of {rule.prefix!r} sets no action")
        for seconds, what in (
            (rule.expire_after, "expire_after"),
            (rule.abort_multipart_after, "abort_after"),
            (rule.transition_after, "transition_after"),
        ):
            if seconds is not None:
                validate_seconds(seconds, what)
        if rule.transition_after is not None:
            validate_storage_class(rule.storage_class)

    async def work(conn: AsyncConnection) -> None:
        now = core.clock()
        locked = await catalog.lock_tenant(conn, tenant, now, create=True)
        assert locked is not None, "created"
        await queries.remove_rules_under(conn, locked.id, under)
        for rule in wanted:
            actions: dict[str, int | str | None] = {
                "expire_after": rule.expire_after,
                "abort_multipart_after": rule.abort_multipart_after,
                "transition_after": rule.transition_after,
                "storage_class": rule.storage_class,
            }
            await queries.set_rule(conn, locked.id, rule.prefix, now, actions)

    await core.database.transaction(work)


async def rules(core: Core, tenant: str | None = None, *, under: str = "") -> list[Rule]:
    """Every tenant's rules, or ``tenant``'s (those whose prefix starts with ``under``), by tenant then prefix."""
    if tenant is not None:
        validate_tenant(tenant)
    return await core.database.read(lambda conn: queries.rules(conn, tenant, under=under))


def validate_seconds(value: object, what: str) -> int:
    """``value`` if it is whole seconds from 1 to 100 years; InvalidInput naming ``what`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SECONDS:
        raise InvalidInput(f"{what} must be whole seconds from 1 to {MAX_SECONDS}, not {value!r}")
    return value


async def expire(core: Core, *, dry_run: bool = False, batch: int = DEFAULT_BATCH) -> ExpiryStats:
    """Delete every expired key of every tenant (a dry run: count them), ``batch`` keys per transaction."""
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= MAX_BATCH:
        raise InvalidInput(f"batch must be a whole number from 1 to {MAX_BATCH}, not {batch!r}")
    stats = ExpiryStats(dry_run, core.clock())
    for tenant in await core.database.read(lambda conn: queries.tenants_to_expire(conn, stats.now)):
        await _expire_tenant(core, tenant, stats, batch)
        await _abort_stale_uploads(core, tenant, stats, batch)
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


async def _abort_stale_uploads(core: Core, tenant: str, stats: ExpiryStats, batch: int) -> None:
    """Abort ``tenant``'s S3 multipart uploads untouched for the ``abort_multipart_after`` of the longest prefix
    of a bucket's rules (``<bucket>/...``) their native keys start with."""
    tenant_rules = await rules(core, tenant)
    found = await core.database.read(partial(catalog.tenant_id, name=tenant))
    for rule in tenant_rules:
        bucket, slash, key_prefix = rule.prefix.partition("/")
        if found is None or rule.abort_multipart_after is None or not slash:
            continue
        cutoff = stats.now - timedelta(seconds=rule.abort_multipart_after)
        after = ""
        while page := await core.database.read(
            partial(
                queries.stale_uploads,
                tenant=found,
                bucket=bucket,
                prefix=key_prefix,
                cutoff=cutoff,
                after_id=after,
                limit=batch,
            )
        ):
            after = page[-1][0]
            for upload_id, key in page:
                governing = setting_for(f"{bucket}/{key}", tenant_rules, "abort_multipart_after")
                if governing != rule.abort_multipart_after:
                    continue  # a longer prefix decides this upload
                if not stats.dry_run and not await core.database.transaction(
                    partial(_abort_upload, tenant=tenant, upload_id=upload_id, cutoff=cutoff, now=stats.now)
                ):
                    continue
                stats.tenants.setdefault(tenant, TenantExpiry()).uploads_aborted += 1


async def _abort_upload(conn: AsyncConnection, *, tenant: str, upload_id: str, cutoff: datetime, now: datetime) -> bool:
    """Abort the upload if, under the tenant's lock, it is still untouched since before ``cutoff``."""
    locked = await catalog.lock_tenant(conn, tenant, now, create=False)
    return locked is not None and await multipart.expire(conn, locked.id, upload_id, cutoff, now)
