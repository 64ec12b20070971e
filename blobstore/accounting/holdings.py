"""What one tenant holds, as that tenant may see it: which digests it has, and its own usage.

Nothing here reveals other tenants: a digest only another tenant holds is
"missing", and usage shows only the tenant's own logical figures (never the
shared or attributed ones of cost reports).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import asdict, dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from blobstore.accounting import quotas
from blobstore.core.egress import egress
from blobstore.db.catalog import blobs, refs, tenants
from blobstore.errors import InvalidInput
from blobstore.model.keys import validate_digest, validate_tenant

if TYPE_CHECKING:
    from blobstore.core.context import Core

#: At most this many digests per probe.
MAX_PROBE = 1000


@dataclass(frozen=True)
class Usage:
    """A tenant's own usage: keys, logical bytes, limits, and bytes read this UTC month."""

    tenant: str
    objects: int
    logical_bytes: int
    max_objects: int | None
    max_bytes: int | None
    egress_bytes_this_month: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


async def missing(core: Core, tenant: str, digests: Iterable[str]) -> list[str]:
    """Those of ``digests`` that ``tenant`` does not reference, in the order given, without repeats."""
    validate_tenant(tenant)
    wanted = list(dict.fromkeys(digests))
    if len(wanted) > MAX_PROBE:
        raise InvalidInput(f"at most {MAX_PROBE} digests per probe, got {len(wanted)}")
    for digest in wanted:
        validate_digest(digest)
    held = await core.database.read(lambda conn: held_digests(conn, tenant, wanted))
    return [digest for digest in wanted if digest not in held]


async def usage(core: Core, tenant: str) -> Usage:
    """The tenant's own usage and limits; a tenant that never stored anything has none."""
    quota = await quotas.quota(core, tenant)
    await core.egress.flush()
    today = core.clock().date()
    read = await core.database.read(lambda conn: egress_bytes(conn, tenant, today.replace(day=1), today))
    return Usage(tenant, quota.used_objects, quota.used_bytes, quota.max_objects, quota.max_bytes, read)


async def held_digests(conn: AsyncConnection, tenant: str, digests: Collection[str]) -> set[str]:
    """Those of ``digests`` that ``tenant`` references under at least one key (other tenants' do not count)."""
    if not digests:
        return set()
    query = (
        select(blobs.c.digest)
        .distinct()
        .join(refs, refs.c.blob_id == blobs.c.id)
        .join(tenants, tenants.c.id == refs.c.tenant_id)
        .where(tenants.c.name == tenant, blobs.c.digest.in_(list(digests)))
    )
    return {row[0] for row in await conn.execute(query)}


async def egress_bytes(conn: AsyncConnection, tenant: str, since: date, until: date) -> int:
    """Bytes ``tenant`` read from ``since`` to ``until`` (UTC days, both included)."""
    query = (
        select(func.coalesce(func.sum(egress.c.bytes), 0))
        .join(tenants, tenants.c.id == egress.c.tenant_id)
        .where(tenants.c.name == tenant, egress.c.day >= since, egress.c.day <= until)
    )
    return int((await conn.execute(query)).scalar_one())
