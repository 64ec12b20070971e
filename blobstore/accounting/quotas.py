"""Per-tenant quotas: limits on stored bytes and objects, beside the usage they limit.

Usage counts a tenant's references: ``used_objects`` its keys and
``used_bytes`` the sum of their sizes (logical bytes, before dedup, since a
tenant must not learn what other tenants store). Every put, copy and delete
changes usage in the transaction that changes the references, and a put or
copy that would cross a limit fails with QuotaExceeded and changes nothing
(decided under the tenant's row lock, :func:`blobstore.db.catalog.lock_tenant`,
so concurrent writers in any number of processes cannot cross a limit
together). Lowering a limit below current usage keeps the data; further growth
fails until usage drops under the limit. Deletes always succeed.

Before a put's bytes arrive, its :func:`allowance` (a read, no lock) lets a
server refuse a body that is certain to fail, from its declared length or as
soon as its running total crosses the line, instead of spooling all of it first.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from blobstore.core.ingest import check_object_size
from blobstore.db import catalog, hot_path
from blobstore.errors import InvalidInput
from blobstore.model.keys import validate_tenant

if TYPE_CHECKING:
    from blobstore.core.context import Core


class Keep(enum.Enum):
    """The type of :data:`KEEP`."""

    KEEP = "keep"


#: Passed for a limit (the default), leaves that limit as it is.
KEEP = Keep.KEEP

Limit = int | None | Keep


@dataclass(frozen=True)
class Quota:
    """A tenant's usage and limits (None: unlimited)."""

    tenant: str
    used_bytes: int
    used_objects: int
    max_bytes: int | None
    max_objects: int | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_row(cls, row: TenantRow) -> Quota:
        return cls(row.name, row.used_bytes, row.used_objects, row.max_bytes, row.max_objects)


@dataclass(frozen=True)
class Allowance:
    """What one put of a key may store, judged from committed usage before its bytes arrive.

    :meth:`check` refuses exactly what the put's atomic check under the tenant's lock
    (blobstore.db.binding) would refuse against the same usage: the put frees the key's
    current value, and a put that does not grow usage always passes. Usage may change
    before the bytes are bound; that check stays the authority.
    """

    tenant: str
    max_object_size: int
    #: The tenant's usage and limits; None when no quota can refuse this put (none is set, or an
    #: ``if_absent`` put of an existing key, which fails with AlreadyExists instead).
    usage: catalog.Usage | None = None
    #: The size of the value the put replaces; None for a new key.
    replaced: int | None = None

    def check(self, size: int) -> None:
        """Raise ObjectTooLarge or QuotaExceeded if a put of ``size`` bytes (or a body that has reached
        ``size`` bytes) would fail now; return otherwise."""
        check_object_size(size, self.max_object_size)
        if self.usage is None:
            return
        add_objects = 1 if self.replaced is None else 0
        violation = catalog.quota_violation(self.usage, self.tenant, size - (self.replaced or 0), add_objects)
        if violation is not None:
            raise violation


async def allowance(core: Core, tenant: str, key: str, *, if_absent: bool = False, quota_set: bool = True) -> Allowance:
    """The :class:`Allowance` of a put of ``key`` now: one read on the hot path, never a write transaction; none
    when ``quota_set`` is False (the caller's credentials, read in the same request, said the tenant has no quota:
    a quota set since is still enforced by the put's binding)."""
    most = core.settings.max_object_size
    if not quota_set:
        return Allowance(tenant, most)
    found = await hot_path.room(core.database, tenant, key)
    if found is None:
        return Allowance(tenant, most)
    usage, replaced = found
    if (usage.max_bytes is None and usage.max_objects is None) or (replaced is not None and if_absent):
        return Allowance(tenant, most)
    return Allowance(tenant, most, usage, replaced)


async def set_quota(core: Core, tenant: str, *, max_bytes: Limit = KEEP, max_objects: Limit = KEEP) -> Quota:
    """Set the tenant's limits (None clears one, KEEP leaves it); creates the tenant if new. Returns the result."""
    validate_tenant(tenant)
    limits = {
        name: _limit(name, value)
        for name, value in (("max_bytes", max_bytes), ("max_objects", max_objects))
        if value is not KEEP
    }

    async def work(conn: AsyncConnection) -> Quota:
        locked = await catalog.lock_tenant(conn, tenant, core.clock(), create=True)
        assert locked is not None
        await set_limits(conn, locked.id, limits)
        return Quota.from_row((await tenant_rows(conn, tenant))[0])

    return await core.database.transaction(work)


async def quota(core: Core, tenant: str) -> Quota:
    """The tenant's usage and limits; a tenant that never stored anything has none of either."""
    validate_tenant(tenant)
    found = await core.database.read(lambda conn: tenant_rows(conn, tenant))
    return Quota.from_row(found[0]) if found else Quota(tenant, 0, 0, None, None)


async def tenants(core: Core) -> list[Quota]:
    """Every tenant's usage and limits, by name."""
    return [Quota.from_row(row) for row in await core.database.read(tenant_rows)]


def _limit(name: str, value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(f"invalid {name} {value!r}: expected an integer >= 0, or None for no limit")
    if value >= 2**63:
        raise InvalidInput(f"invalid {name} {value!r}: at most {2**63 - 1}")
    return value


@dataclass(frozen=True)
class TenantRow:
    """A tenant's name, usage counters and limits (None: unlimited)."""

    name: str
    used_bytes: int
    used_objects: int
    max_bytes: int | None
    max_objects: int | None


_COLUMNS = (
    catalog.tenants.c.name,
    catalog.tenants.c.used_bytes,
    catalog.tenants.c.used_objects,
    catalog.tenants.c.max_bytes,
    catalog.tenants.c.max_objects,
)


async def tenant_rows(conn: AsyncConnection, name: str | None = None) -> list[TenantRow]:
    """Every tenant (or only ``name``), by name."""
    query = select(*_COLUMNS).order_by(catalog.tenants.c.name)
    if name is not None:
        query = query.where(catalog.tenants.c.name == name)
    return [TenantRow(*row) for row in await conn.execute(query)]


async def set_limits(conn: AsyncConnection, tenant: int, limits: dict[str, int | None]) -> None:
    """Set some of ``max_bytes`` / ``max_objects`` (None: no limit). Usage is untouched, even if above a new limit."""
    if limits:
        await conn.execute(update(catalog.tenants).where(catalog.tenants.c.id == tenant).values(**limits))
