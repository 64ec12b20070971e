"""Pairing a metadata database with its object storage.

Both sides hold the same random store id (a ``store_meta`` row and a marker
object). Opening a store with a database and a storage that belong to
different stores fails, so garbage collection can never mistake an empty or
wrong database for "nothing is referenced" and wipe someone's objects.

Stores never nest: a storage location inside another store's, or one that
holds another store below it, is refused, and the marker is created with a
conditional write, so of two stores initialised at once on one empty location
exactly one claims it.

Only the first open of a brand-new location creates it and its marker. Once
paired, the storage requires its marker: a location that is removed or
unmounted under a running store is an outage (StorageUnavailable), never a
fresh empty store that writes would be acknowledged into.
"""

from __future__ import annotations

import secrets

from blobstore.db import catalog
from blobstore.db.engine import Database
from blobstore.errors import ConfigurationError, ObjectMissing
from blobstore.storage.base import ObjectStorage, read_all
from blobstore.storage.layout import FANOUT_PREFIXES, OBJECT_PREFIX, is_object_key

MARKER_KEY = "blobstore-store-id"


async def pair(database: Database, storage: ObjectStorage) -> str:
    """Return the store id shared by ``database`` and ``storage``, creating it for a brand-new store; from
    then on the storage requires its marker (nothing recreates a location that vanishes, see
    :meth:`~blobstore.storage.base.ObjectStorage.require_marker`)."""
    store_id = await _settle(database, storage)
    storage.require_marker(MARKER_KEY)
    return store_id


async def _settle(database: Database, storage: ObjectStorage) -> str:
    """The store id of a matching pair, or of a new store whose marker this call wrote."""
    db_id = await database.read(catalog.store_id)
    storage_id = await _marker(storage)
    enclosing = await storage.enclosing_object(MARKER_KEY)
    if enclosing is not None:
        raise ConfigurationError(
            f"BLOBSTORE_STORAGE_URL: {storage.url} lies inside the storage of another blobstore at {enclosing}; "
            "give each store a location of its own"
        )
    if db_id is not None and db_id == storage_id:
        return db_id
    if db_id is not None and storage_id is not None:
        raise ConfigurationError(
            f"BLOBSTORE_STORAGE_URL: {storage.url} belongs to blobstore {storage_id}, "
            f"but the database (BLOBSTORE_DATABASE_URL) belongs to {db_id}"
        )
    if storage_id is not None:
        raise ConfigurationError(
            f"BLOBSTORE_DATABASE_URL: the database is empty but {storage.url} already holds "
            f"blobstore {storage_id}; point blobstore at that store's database"
        )
    if db_id is not None and await database.read(catalog.blob_count) > 0:
        missing = await storage.missing_location()
        found = missing or f"{storage.url} has no blobstore marker"
        raise ConfigurationError(
            f"BLOBSTORE_STORAGE_URL: {found}, but the database references objects stored there; "
            f"point blobstore at that store's storage"
        )
    await _refuse_occupied(storage)
    # A new store: the database settles the id (the first writer wins), then the storage marker is
    # created only if absent, so of two stores racing for one location exactly one claims it.
    candidate = secrets.token_hex(16)
    await database.transaction(lambda conn: catalog.set_store_id(conn, candidate))
    settled = await database.read(catalog.store_id)
    assert settled is not None
    if await storage.write_if_absent(MARKER_KEY, settled.encode("ascii")):
        await storage.prepare_prefixes(FANOUT_PREFIXES)
        return settled
    winner = await _marker(storage)
    if winner != settled:
        raise ConfigurationError(
            f"BLOBSTORE_STORAGE_URL: {storage.url} was just claimed by blobstore {winner}, "
            f"but the database (BLOBSTORE_DATABASE_URL) belongs to {settled}"
        )
    return settled


async def _marker(storage: ObjectStorage) -> str | None:
    """The store id in ``storage``'s marker, or None if it has none."""
    try:
        return (await read_all(storage, MARKER_KEY)).decode("ascii", "replace").strip()
    except ObjectMissing:
        return None


async def _refuse_occupied(storage: ObjectStorage) -> None:
    """Refuse to start a new store where blob objects already lie, or where another store lives below.

    This lists the whole location once, when a store is created; other files are fine.
    """
    async for info in storage.list():
        if info.key.endswith("/" + MARKER_KEY):
            nested = info.key.removesuffix(MARKER_KEY).rstrip("/")
            raise ConfigurationError(
                f"BLOBSTORE_STORAGE_URL: {storage.url} holds another blobstore under {nested!r}; "
                "give each store a location of its own"
            )
        if info.key.startswith(OBJECT_PREFIX) and is_object_key(info.key):
            raise ConfigurationError(
                f"BLOBSTORE_STORAGE_URL: {storage.url} holds blob objects but no blobstore marker; "
                "refusing to adopt it as a new store (its objects would look unreferenced)"
            )
