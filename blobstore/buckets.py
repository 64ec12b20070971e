"""S3 buckets: named namespaces of one tenant, whose objects are the tenant's keys under ``<bucket>/``.

Names are unique per tenant (two tenants may each own ``uploads``), and a
tenant sees only its own: asking for another tenant's bucket answers as for
one that does not exist. Object ``KEY`` of bucket ``B`` is the native key
``B/KEY``, so quotas, dedup, refcounts, GC and reports need no second model.

Beside them, the ETags S3 clients expect: the MD5 of bytes a tenant wrote through S3, per tenant and digest;
and the additional checksums (``x-amz-checksum-*``) its S3 uploads carried, kept the same way.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from blobstore.model.keys import validate_bucket, validate_tenant
from blobstore.model.s3_facts import S3Facts

if TYPE_CHECKING:  # the database layer loads when a bucket is used
    from sqlalchemy.ext.asyncio import AsyncConnection

    from blobstore.core.context import Core


@dataclass(frozen=True)
class Bucket:
    """A bucket as ListBuckets shows it."""

    name: str
    created_at: datetime


class Deletion(enum.Enum):
    """What :func:`delete` did."""

    DELETED = "deleted"
    MISSING = "missing"
    NOT_EMPTY = "not empty"


def key_of(bucket: str, key: str) -> str:
    """The native key of object ``key`` in ``bucket``."""
    return f"{bucket}/{key}"


async def create(core: Core, tenant: str, name: str) -> bool:
    """Create the tenant's bucket ``name``; False (nothing changed) if the tenant already owns one of that name."""
    from blobstore.db import buckets as db
    from blobstore.db.catalog import lock_tenant

    validate_tenant(tenant)
    validate_bucket(name)
    now = core.clock()

    async def work(conn: AsyncConnection) -> bool:
        locked = await lock_tenant(conn, tenant, now, create=True)
        assert locked is not None
        return await db.insert_bucket(conn, locked.id, name, now)

    return await core.database.transaction(work)


async def list_buckets(core: Core, tenant: str) -> list[Bucket]:
    """The tenant's buckets, by name."""
    from blobstore.db import buckets as db

    validate_tenant(tenant)
    rows = await core.database.read(lambda conn: db.list_buckets(conn, tenant))
    return [Bucket(name, created) for name, created in rows]


async def find(core: Core, tenant: str, name: str) -> Bucket | None:
    """The tenant's bucket ``name``; None if the tenant has none of that name (or the name is not a bucket name)."""
    from blobstore.db import buckets as db

    validate_tenant(tenant)
    try:
        validate_bucket(name)
    except ValueError:
        return None
    created = await db.lookup_bucket(core.database, tenant, name)
    return None if created is None else Bucket(name, created)


async def delete(core: Core, tenant: str, name: str) -> Deletion:
    """Delete the tenant's bucket ``name`` if it holds no key, with its lifecycle rules (those under ``<name>/``);
    under the tenant's lock, so no put binds meanwhile."""
    from blobstore.db import buckets as db
    from blobstore.db.catalog import lock_tenant
    from blobstore.db.lifecycle import remove_rules_under

    validate_tenant(tenant)
    if await find(core, tenant, name) is None:
        return Deletion.MISSING
    now = core.clock()

    async def work(conn: AsyncConnection) -> Deletion:
        locked = await lock_tenant(conn, tenant, now, create=False)
        if locked is None or await db.find_bucket(conn, tenant, name) is None:
            return Deletion.MISSING
        if await db.bucket_holds_keys(conn, locked.id, name):
            return Deletion.NOT_EMPTY
        await db.delete_bucket(conn, locked.id, name)
        await remove_rules_under(conn, locked.id, key_of(name, ""))
        return Deletion.DELETED

    return await core.database.transaction(work)


async def etags(core: Core, tenant: str, digests: Iterable[str]) -> dict[str, str]:
    """The ETag of each digest (:func:`etag`)."""
    from blobstore.db import buckets as db

    wanted = sorted(set(digests))
    known = await db.lookup_md5s(core.database, tenant, wanted) if wanted else {}
    return {digest: etag(digest, known.get(digest)) for digest in wanted}


def etag(digest: str, md5: str | None) -> str:
    """The ETag of the bytes of ``digest``: the quoted MD5 if the tenant wrote them through S3, else the quoted
    digest (an opaque ETag, as S3's own are for multipart uploads)."""
    return f'"{md5 or digest}"'


async def part_sizes(core: Core, tenant: str, digest: str) -> list[int] | None:
    """The sizes of the parts the tenant's bytes of ``digest`` were completed from, in order, if their ETag is a
    multipart upload's; None for bytes written whole."""
    from blobstore.db import buckets as db

    return await db.lookup_part_sizes(core.database, tenant, digest)


async def facts(core: Core, tenant: str, digest: str) -> S3Facts:
    """What the tenant's S3 uploads recorded of the bytes of ``digest``: their MD5 and checksums, in one read."""
    from blobstore.db import s3_facts

    return await s3_facts.lookup(core.database, tenant, digest)
