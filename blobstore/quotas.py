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
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncConnection

from blobstore.db import catalog
from blobstore.db.tenants import TenantRow, set_limits, tenant_rows
from blobstore.errors import InvalidInput
from blobstore.keys import validate_tenant

if TYPE_CHECKING:
    from blobstore.store import BlobStore


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


async def set_quota(store: BlobStore, tenant: str, *, max_bytes: Limit = KEEP, max_objects: Limit = KEEP) -> Quota:
    """Set the tenant's limits (None clears one, KEEP leaves it); creates the tenant if new. Returns the result."""
    validate_tenant(tenant)
    limits = {
        name: _limit(name, value)
        for name, value in (("max_bytes", max_bytes), ("max_objects", max_objects))
        if value is not KEEP
    }

    async def work(conn: AsyncConnection) -> Quota:
        locked = await catalog.lock_tenant(conn, tenant, store.clock(), create=True)
        assert locked is not None
        await set_limits(conn, locked.id, limits)
        return Quota.from_row((await tenant_rows(conn, tenant))[0])

    return await store.database.transaction(work)


async def quota(store: BlobStore, tenant: str) -> Quota:
    """The tenant's usage and limits; a tenant that never stored anything has none of either."""
    validate_tenant(tenant)
    found = await store.database.transaction(lambda conn: tenant_rows(conn, tenant))
    return Quota.from_row(found[0]) if found else Quota(tenant, 0, 0, None, None)


async def tenants(store: BlobStore) -> list[Quota]:
    """Every tenant's usage and limits, by name."""
    return [Quota.from_row(row) for row in await store.database.transaction(tenant_rows)]


def _limit(name: str, value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(f"invalid {name} {value!r}: expected an integer >= 0, or None for no limit")
    if value >= 2**63:
        raise InvalidInput(f"invalid {name} {value!r}: at most {2**63 - 1}")
    return value
