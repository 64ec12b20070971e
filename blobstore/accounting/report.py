"""Storage cost reports: what each tenant stores, shares, reads, and costs.

Figures of a tenant (a *reference* is one of its keys; a *blob* is one stored object):

``objects``
    its references.
``logical_bytes``
    the sum of the sizes of its references: what it would store without dedup.
``unique_bytes``
    the sizes of the blobs only this tenant references, each blob once.
``shared_bytes``
    the sizes of the blobs this tenant references that at least one other
    tenant references too, each blob once. ``unique + shared`` is the size of
    everything the tenant holds, counted once per blob.
``attributed_bytes``
    the tenant's share of the physical bytes. A blob of ``size`` bytes held by
    ``n`` references (of any tenants) attributes ``size // n`` bytes to each
    reference; the remaining ``size % n`` bytes (fewer than ``n``) go to the
    blob's *first holder*: of the tenants holding it, the one that became a
    tenant first (the smallest tenant id; a fixed order that needs no lookup).
    So the attributed bytes of all tenants add up *exactly* to the physical bytes.
``bytes_saved``, ``dedup_ratio``
    ``logical - attributed`` and ``logical / attributed`` (None when nothing is attributed): what dedup saves.
``compressed_bytes``
    the tenant's share of the bytes its blobs take on storage, compressed (docs/frames.md: a blob's
    ``stored_size``; a blob stored before frames takes its size), attributed by the same rule as
    ``attributed_bytes``. The other figures are all plaintext bytes: ``compressed_bytes`` is the one that
    object storage bills.
``compression_saved_bytes``, ``compression_ratio``
    ``attributed - compressed`` and ``attributed / compressed`` (None when nothing is stored): what
    compression saves on top of dedup. ``logical - compressed`` is what both save together.
``class_bytes``
    ``compressed_bytes`` by the storage class the blobs are in (blobstore.maintenance.transitions; all
    ``STANDARD`` until a lifecycle rule moves some), attributed by the same rule.
``egress_bytes``
    bytes read (``Tenant.get`` and ``Tenant.open``, as streamed) from ``since`` to ``until``.

Costs are exact decimals at a :class:`~blobstore.accounting.pricing.PriceList`:
``storage_cost`` is the estimated cost per month of the compressed bytes, each class at its own price,
``egress_cost`` the cost of the egress in the window.

The :class:`StoreTotal` is always the whole store, whatever tenant the report
selects: the tenants' sums, plus figures that belong to no tenant.
``unique_bytes`` are the blobs held by exactly one tenant and ``shared_bytes``
those held by several, each blob once, so ``unique + shared = physical``;
``physical_bytes`` (= the sum of attributed bytes) is every blob a reference
points at, once; ``pending_gc_bytes`` is what storage still holds for GC to
reclaim (unreferenced live blobs, tombstoned blobs, uploads older than the GC
grace period that never committed), ``pending_gc_compressed_bytes`` what those take on storage, costed
as ``pending_gc_cost``; ``stored_bytes = physical + pending_gc`` is everything storage holds in plaintext
bytes (its meaning from before compression), ``compressed_stored_bytes = compressed + pending_gc_compressed``
the length of every object storage holds.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, ColumnElement, Integer, Subquery, and_, case, cast, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from blobstore.accounting.pricing import PriceList, decimal_text, exact_sum, price_list
from blobstore.core import egress
from blobstore.db.catalog import DELETING, LIVE, UPLOADING, blobs, refs, tenants
from blobstore.errors import InvalidInput
from blobstore.model.keys import validate_tenant
from blobstore.model.transitions import STANDARD

if TYPE_CHECKING:
    from blobstore.core.context import Core


@dataclass(frozen=True)
class Figures:
    """The figures tenants and the store total share; derived ratios are properties."""

    objects: int
    logical_bytes: int
    unique_bytes: int
    shared_bytes: int
    attributed_bytes: int
    compressed_bytes: int
    #: ``compressed_bytes`` by the storage class they are in (docs/lifecycle.md), each class at its own price.
    class_bytes: dict[str, int]
    egress_bytes: int
    storage_cost: Decimal
    egress_cost: Decimal

    @property
    def bytes_saved(self) -> int:
        """Logical bytes minus attributed bytes: what dedup saves."""
        return self.logical_bytes - self.attributed_bytes

    @property
    def dedup_ratio(self) -> float | None:
        """Logical bytes per attributed byte; None when nothing is attributed."""
        return self.logical_bytes / self.attributed_bytes if self.attributed_bytes else None

    @property
    def compression_saved_bytes(self) -> int:
        """Attributed bytes minus compressed bytes: what compression saves on top of dedup."""
        return self.attributed_bytes - self.compressed_bytes

    @property
    def compression_ratio(self) -> float | None:
        """Attributed bytes per compressed byte; None when nothing is stored."""
        return self.attributed_bytes / self.compressed_bytes if self.compressed_bytes else None

    @property
    def total_cost(self) -> Decimal:
        """Storage per month plus egress in the window."""
        return exact_sum([self.storage_cost, self.egress_cost])

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: integers for bytes, decimal strings for money, ratios rounded to 4 places."""
        values: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            values[item.name] = decimal_text(value) if isinstance(value, Decimal) else value
        values["class_bytes"] = dict(sorted(self.class_bytes.items()))
        values |= {
            "bytes_saved": self.bytes_saved,
            "dedup_ratio": _rounded(self.dedup_ratio),
            "compression_saved_bytes": self.compression_saved_bytes,
            "compression_ratio": _rounded(self.compression_ratio),
            "total_cost": decimal_text(self.total_cost),
        }
        return values


@dataclass(frozen=True)
class TenantCost(Figures):
    """One tenant's figures and costs."""

    tenant: str

    def to_dict(self) -> dict[str, Any]:
        return {"tenant": self.tenant} | super().to_dict()


@dataclass(frozen=True)
class StoreTotal(Figures):
    """The whole store: the tenants' sums, physical bytes, and what GC has yet to reclaim."""

    tenants: int
    blobs: int
    pending_gc_blobs: int
    pending_gc_bytes: int
    pending_gc_compressed_bytes: int
    pending_gc_cost: Decimal

    @property
    def physical_bytes(self) -> int:
        """Every blob a reference points at, once (the sum of attributed bytes)."""
        return self.attributed_bytes

    @property
    def stored_bytes(self) -> int:
        """Physical bytes plus bytes pending GC: what object storage holds, in plaintext bytes."""
        return self.physical_bytes + self.pending_gc_bytes

    @property
    def compressed_stored_bytes(self) -> int:
        """Compressed bytes plus those pending GC: the length of every object storage holds."""
        return self.compressed_bytes + self.pending_gc_compressed_bytes

    @property
    def total_cost(self) -> Decimal:
        """Storage per month (pending GC included) plus egress in the window."""
        return exact_sum([self.storage_cost, self.pending_gc_cost, self.egress_cost])

    def to_dict(self) -> dict[str, Any]:
        return super().to_dict() | {
            "physical_bytes": self.physical_bytes,
            "stored_bytes": self.stored_bytes,
            "compressed_stored_bytes": self.compressed_stored_bytes,
        }


@dataclass(frozen=True)
class CostReport:
    """A cost report: per-tenant rows (all tenants, or the one selected) and the store total."""

    generated_at: datetime
    since: date
    until: date
    pricing: PriceList
    total: StoreTotal
    tenants: list[TenantCost] = field(default_factory=list)
    tenant: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the whole report."""
        return {
            "generated_at": self.generated_at.isoformat(),
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "tenant": self.tenant,
            "pricing": self.pricing.to_dict(),
            "tenants": [row.to_dict() for row in self.tenants],
            "total": self.total.to_dict(),
        }


async def report(
    core: Core,
    *,
    tenant: str | None = None,
    pricing: str | PriceList | None = None,
    since: date | None = None,
) -> CostReport:
    """Build a cost report (see the module docstring for every figure).

    ``pricing`` is a preset name or a PriceList (default ``aws-s3-standard``);
    egress counts from ``since`` (default: the first day of the current month
    by the store's clock) to today, both included.
    """
    if tenant is not None:
        validate_tenant(tenant)
    prices = pricing if isinstance(pricing, PriceList) else price_list(pricing)
    now = core.clock()
    until = now.date()
    window_start = _since(since, until)
    cutoff = now - timedelta(seconds=core.settings.gc_grace_seconds)

    async def work(
        conn: AsyncConnection,
    ) -> tuple[list[TenantFigures], dict[str, dict[str, int]] | None, PendingGc, dict[str, int]]:
        await without_jit(conn)
        figures = await tenant_figures(conn)
        by_class = await class_figures(conn)
        return figures, by_class, await pending_gc(conn, cutoff), await egress.by_tenant(conn, window_start, until)

    figures, by_class, pending, reads = await core.database.snapshot(work)  # one snapshot: the figures add up
    rows = [_tenant_cost(row, (by_class or {}).get(row.tenant), reads.get(row.tenant, 0), prices) for row in figures]
    selected = rows if tenant is None else [row for row in rows if row.tenant == tenant]
    if tenant is not None and not selected:
        empty = TenantFigures(tenant, 0, 0, 0, 0, 0, 0, 0)
        selected = [_tenant_cost(empty, None, 0, prices)]
    return CostReport(
        generated_at=now,
        since=window_start,
        until=until,
        pricing=prices,
        total=_total(rows, sum(row.first_held_blobs for row in figures), pending, prices),
        tenants=selected,
        tenant=tenant,
    )


def _since(since: object, until: date) -> date:
    if since is None:
        return until.replace(day=1)
    if isinstance(since, datetime):
        since = since.date()
    if not isinstance(since, date):
        raise InvalidInput(f"invalid since {since!r}: expected a date")
    if since > until:
        raise InvalidInput(f"since {since.isoformat()} is after today ({until.isoformat()})")
    return since


def _tenant_cost(
    row: TenantFigures, class_bytes: dict[str, int] | None, egress_bytes: int, prices: PriceList
) -> TenantCost:
    """``row`` priced; ``class_bytes`` None: every byte in STANDARD."""
    if class_bytes is None:
        class_bytes = {STANDARD: row.compressed_bytes} if row.compressed_bytes else {}
    return TenantCost(
        objects=row.objects,
        logical_bytes=row.logical_bytes,
        unique_bytes=row.unique_bytes,
        shared_bytes=row.shared_bytes,
        attributed_bytes=row.attributed_bytes,
        compressed_bytes=row.compressed_bytes,
        class_bytes=class_bytes,
        egress_bytes=egress_bytes,
        storage_cost=exact_sum(prices.storage_cost(nbytes, name) for name, nbytes in class_bytes.items()),
        egress_cost=prices.egress_cost(egress_bytes),
        tenant=row.tenant,
    )


def _total(rows: list[TenantCost], blobs: int, pending: PendingGc, prices: PriceList) -> StoreTotal:
    physical = sum(row.attributed_bytes for row in rows)
    unique = sum(row.unique_bytes for row in rows)
    return StoreTotal(
        objects=sum(row.objects for row in rows),
        logical_bytes=sum(row.logical_bytes for row in rows),
        unique_bytes=unique,
        shared_bytes=physical - unique,
        attributed_bytes=physical,
        compressed_bytes=sum(row.compressed_bytes for row in rows),
        class_bytes=dict(sum((Counter(row.class_bytes) for row in rows), Counter())),
        egress_bytes=sum(row.egress_bytes for row in rows),
        storage_cost=exact_sum(row.storage_cost for row in rows),
        egress_cost=exact_sum(row.egress_cost for row in rows),
        tenants=len(rows),
        blobs=blobs,
        pending_gc_blobs=pending.blobs,
        pending_gc_bytes=pending.bytes,
        pending_gc_compressed_bytes=pending.compressed_bytes,
        pending_gc_cost=prices.storage_cost(pending.compressed_bytes),
    )


def _rounded(ratio: float | None) -> float | None:
    return None if ratio is None else round(ratio, 4)


# --- The queries behind a report ---------------------------------------------------------------------
#
# Aggregate queries behind cost reports, computed in the database with GROUP BY.
#
# No query here returns a row per reference: per-tenant figures come back as one
# row per tenant, store-wide figures as one row. The per-tenant query reads
# the ``refs (blob_id, tenant_id, size)`` index once, in its order, and each
# referenced blob's row once by its key (for its stored size)::
#
#     pairs   (blob, tenant) -> k references, blob size         GROUP BY blob_id, tenant_id
#     shares  + stored size (blobs, by id), n = references to   join, window functions per blob
#               the blob, holders = tenants holding it,
#               first = the smallest holder id
#     result  per tenant: sums over its pairs                   GROUP BY tenant_id
#
# Attribution (the module docstring states the rule in words): each of a blob's ``n``
# references is attributed ``size // n`` bytes and the blob's first holder (the
# smallest tenant id) also gets the remainder ``size % n``, so the attributed
# bytes of all tenants add up exactly to the bytes of the referenced blobs. Compressed bytes are attributed
# by the same rule on the blob's stored size. A reference's size is its blob's size (the binding copies it,
# :mod:`blobstore.db.binding`); only the stored size comes from the blob table.


@dataclass(frozen=True)
class TenantFigures:
    """Storage figures of one tenant; see blobstore.accounting.report for what each one means."""

    tenant: str
    objects: int
    logical_bytes: int
    unique_bytes: int
    shared_bytes: int
    attributed_bytes: int
    compressed_bytes: int
    #: Blobs of which this tenant is the first holder; over all tenants, every referenced blob once.
    first_held_blobs: int


@dataclass(frozen=True)
class PendingGc:
    """Blobs storage still holds that GC has yet to reclaim."""

    blobs: int
    bytes: int
    compressed_bytes: int


async def without_jit(conn: AsyncConnection) -> None:
    """Turn PostgreSQL's JIT compilation off for the rest of this transaction: for the report's
    queries it costs more (100+ ms) than it saves. Nothing to do on SQLite."""
    if conn.dialect.name == "postgresql":
        await conn.exec_driver_sql("SET LOCAL jit = off")


async def tenant_figures(conn: AsyncConnection) -> list[TenantFigures]:
    """Every tenant's figures (zeros for a tenant without references), by tenant name."""
    shares = _shares()
    k, size, stored, n = shares.c.k, shares.c.size, shares.c.stored, shares.c.n
    first = shares.c.tenant_id == shares.c.first
    sums = (
        select(
            shares.c.tenant_id,
            func.sum(k).label("objects"),
            func.sum(k * size).label("logical"),
            func.sum(case((shares.c.holders == 1, size), else_=0)).label("unique"),
            func.sum(case((shares.c.holders > 1, size), else_=0)).label("shared"),
            func.sum((size // n) * k + case((first, size % n), else_=0)).label("attributed"),
            func.sum((stored // n) * k + case((first, stored % n), else_=0)).label("compressed"),
            func.sum(case((first, 1), else_=0)).label("first_held"),
        )
        .group_by(shares.c.tenant_id)
        .subquery("sums")
    )
    query = (
        select(tenants.c.name, *(func.coalesce(column, 0) for column in list(sums.c)[1:]))
        .outerjoin(sums, sums.c.tenant_id == tenants.c.id)
        .order_by(tenants.c.name)
    )
    return [TenantFigures(row[0], *(int(value) for value in row[1:])) for row in await conn.execute(query)]


def _shares() -> Subquery:
    """Per (blob, tenant) holding it: the tenant's ``k`` references, the blob's size, stored size and storage
    class, ``n`` references to the blob in all, its ``holders`` and ``first`` holder (the smallest tenant id)."""
    pairs = (
        select(
            refs.c.blob_id,
            refs.c.tenant_id,
            cast(func.count(), Integer).label("k"),
            func.max(refs.c.size).label("size"),
        )
        .group_by(refs.c.blob_id, refs.c.tenant_id)
        .subquery("pairs")
    )
    per_blob = pairs.c.blob_id
    return (
        select(
            pairs.c.tenant_id,
            pairs.c.k,
            pairs.c.size,
            _stored_size().label("stored"),
            cast(func.sum(pairs.c.k).over(partition_by=per_blob), BigInteger).label("n"),
            func.count().over(partition_by=per_blob).label("holders"),
            func.min(pairs.c.tenant_id).over(partition_by=per_blob).label("first"),
            blobs.c.storage_class,
        )
        .join_from(pairs, blobs, blobs.c.id == per_blob)
        .subquery("shares")
    )


async def class_figures(conn: AsyncConnection) -> dict[str, dict[str, int]] | None:
    """Each tenant's compressed bytes (attributed as in :func:`tenant_figures`) by storage class; None when
    every live blob is in STANDARD, which needs no pass over the references."""
    cooled = select(blobs.c.id).where(blobs.c.state == LIVE, blobs.c.storage_class.is_not(None)).limit(1)
    if (await conn.execute(cooled)).first() is None:
        return None
    shares = _shares()
    k, stored, n = shares.c.k, shares.c.stored, shares.c.n
    first = shares.c.tenant_id == shares.c.first
    storage_class = func.coalesce(shares.c.storage_class, STANDARD)
    query = (
        select(tenants.c.name, storage_class, func.sum((stored // n) * k + case((first, stored % n), else_=0)))
        .join(tenants, tenants.c.id == shares.c.tenant_id)
        .group_by(tenants.c.name, storage_class)
    )
    found: dict[str, dict[str, int]] = {}
    for name, class_name, nbytes in await conn.execute(query):
        if nbytes:
            found.setdefault(name, {})[class_name] = int(nbytes)
    return found


async def pending_gc(conn: AsyncConnection, cutoff: datetime) -> PendingGc:
    """Blobs GC will reclaim, now or once past the grace period: unreferenced live blobs, tombstoned
    blobs, and uploads begun before ``cutoff`` that never committed (younger ones are in flight).

    The conditions are GC's own (blobstore.db.maintenance) without the age of unreferenced blobs,
    and they select through the ``(state, unreferenced_since)`` index: the cost follows what is
    pending, not the number of blobs.
    """
    condition = or_(
        and_(blobs.c.state == LIVE, blobs.c.unreferenced_since.is_not(None), blobs.c.refcount <= 0),
        blobs.c.state == DELETING,
        and_(blobs.c.state == UPLOADING, blobs.c.created_at < cutoff),
    )
    sums = func.coalesce(func.sum(blobs.c.size), 0), func.coalesce(func.sum(_stored_size()), 0)
    query = select(func.count(), *sums).where(condition)
    count, total, compressed = (await conn.execute(query)).one()
    return PendingGc(int(count), int(total), int(compressed))


def _stored_size() -> ColumnElement[int]:
    """A blob's length on storage: its ``stored_size``, or its size for a blob stored before frames."""
    return func.coalesce(blobs.c.stored_size, blobs.c.size)
