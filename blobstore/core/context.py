"""The core of an open store: the parts every service works with, built once by :func:`open_core`.

The services (tenants, the upload protocol, gc, fsck, quotas, reports, tokens,
signing) take a :class:`Core`, never the :class:`~blobstore.store.BlobStore`
facade, so no service imports the store back. A core is immutable: wrappers
(the timing of blobstore.core.instrument) are composed when it is built, not
swapped in later.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.exc import DBAPIError

from blobstore.core.config import Settings
from blobstore.core.egress import EgressLedger
from blobstore.core.group_commit import GroupCommit
from blobstore.core.identity import pair
from blobstore.core.instrument import Observer, time_statements, timed_storage
from blobstore.core.pairing import PairedLater
from blobstore.core.spool import Spool
from blobstore.db import catalog, migrate, sqlite_files
from blobstore.db.engine import Database, is_transient
from blobstore.errors import BlobStoreError, ConfigurationError, StorageUnavailable, StorageUnreachable
from blobstore.storage import ObjectStorage, open_storage_from_url
from blobstore.storage.base import ObjectReader

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
#: Tries of the database's first statement before a store opens: a connection the server cut under it (an
#: administrator's or a restart's termination) is tried again, a refusal or a bad URL is not.
_PROBES = 3


def utc_now() -> datetime:
    """The default clock."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class Core:
    """An open store's settings, metadata database, object storage, clock and egress meter, fixed for its life."""

    settings: Settings
    database: Database
    storage: ObjectStorage
    clock: Clock
    #: Bytes read, written to the egress table off the read path (see blobstore.core.egress).
    egress: EgressLedger
    #: Where puts land while object storage is unreachable (BLOBSTORE_SPOOL_DIR); None: no spool.
    spool: Spool | None = None
    #: The rounds concurrent single puts share (blobstore.core.group_commit).
    group_commit: GroupCommit = field(default_factory=GroupCommit, compare=False)

    @property
    def readable(self) -> ObjectReader:
        """What reads read from: this node's spool where it holds the object, object storage otherwise."""
        return self.storage if self.spool is None else self.spool.reading(self.storage)

    def dedup_scope_of(self, tenant: str) -> str:
        """The scope inside which blobs are shared: everyone (``""``) or one tenant."""
        return "" if self.settings.dedup_scope == "global" else tenant

    async def close(self) -> None:
        """Record pending egress, then release the database pool and the storage client."""
        await self.egress.close()
        await self.database.dispose()
        await self.storage.close()


async def open_core(
    settings: Settings,
    *,
    storage: ObjectStorage | None = None,
    clock: Clock = utc_now,
    migrate_schema: bool | None = None,
    observer: Observer | None = None,
) -> Core:
    """Connect to the database and storage ``settings`` name, check both belong together, and build the core.

    The embedded SQLite database migrates itself; other databases must be at the newest
    schema unless ``migrate_schema``. Any misconfiguration raises ConfigurationError
    naming the variable. With ``observer``, storage operations and database statements
    are timed for it for the core's whole life.
    """
    settings.check_durability()
    if storage is None:
        storage = open_storage_from_url(
            settings.storage_url, endpoint_url=settings.s3_endpoint_url, region=settings.s3_region
        )
    database = await open_database(settings)
    try:
        outage = await _outage_at_start(storage, spooling=settings.spool_dir is not None)
        if settings.is_sqlite if migrate_schema is None else migrate_schema:
            await migrate.upgrade(database)
        elif not await migrate.is_current(database):
            raise ConfigurationError(
                "BLOBSTORE_DATABASE_URL: the database schema is not up to date; run `blobstore db upgrade`"
            )
        if outage is None:
            await pair(database, storage)
        else:
            storage = await _paired_later(database, storage, outage)
    except BaseException:
        await database.dispose()
        await storage.close()
        raise
    if observer is not None:
        storage = timed_storage(storage, observer)
        time_statements(database, observer)
    spool = None
    if settings.spool_dir is not None:
        spool = Spool(settings.spool_dir, settings.spool_max_bytes, settings.node_id)
        await spool.storage.check()  # ConfigurationError now rather than a failed put in an outage
        if outage is not None:
            spool.outage.failed()
    return Core(settings, database, storage, clock, EgressLedger(database), spool)


async def _outage_at_start(storage: ObjectStorage, *, spooling: bool) -> StorageUnreachable | StorageUnavailable | None:
    """Check ``storage``: None if it answers; if it does not and the node has a spool to ride that out, why not.
    Without a spool that error is raised (StorageUnreachable is a ConfigurationError), as is any other."""
    try:
        await storage.check()
    except (StorageUnreachable, StorageUnavailable) as error:
        if not spooling:
            raise
        return error
    return None


async def _paired_later(database: Database, storage: ObjectStorage, outage: BlobStoreError) -> ObjectStorage:
    """``storage``, which did not answer at start, wrapped to pair once it does (blobstore.core.pairing); a new
    store, which has no id to check the storage against, cannot start so: ``outage`` is raised."""
    if await database.read(catalog.store_id) is None:
        raise outage
    log.warning("object storage does not answer (%s); puts go to the spool until it does", outage)
    return PairedLater(storage, database, outage)


async def open_database(settings: Settings) -> Database:
    """Create the engine and prove the database answers; ConfigurationError if it does not."""
    if (path := settings.sqlite_file) is not None:
        try:
            sqlite_files.make_private(path)
        except OSError as exc:
            raise ConfigurationError(f"BLOBSTORE_DATABASE_URL: cannot create {path}: {exc.strerror}") from None
    database = Database(settings.database_url)
    for attempt in range(1, _PROBES + 1):
        try:
            async with database.engine.connect() as conn:
                await conn.exec_driver_sql("SELECT 1")
            return database
        except DBAPIError as exc:  # a connection cut under the probe (a server restarting) is worth another try
            if attempt < _PROBES and is_transient(exc):
                await asyncio.sleep(0.1 * attempt)
                continue
            reason: object = exc.orig or exc
        except OSError as exc:
            reason = exc
        await database.dispose()
        raise ConfigurationError(f"BLOBSTORE_DATABASE_URL: cannot connect to the database: {reason}") from None
    raise AssertionError("unreachable")
