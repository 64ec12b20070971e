"""Pairing a metadata database with its object storage.

Both sides hold the same random store id (a ``store_meta`` row and a marker
object). Opening a store with a database and a storage that belong to
different stores fails, so garbage collection can never mistake an empty or
wrong database for "nothing is referenced" and wipe someone's objects.
"""

from __future__ import annotations

import secrets

from blobstore.db import catalog
from blobstore.db.engine import Database
from blobstore.errors import ConfigurationError
from blobstore.layout import OBJECT_PREFIX
from blobstore.storage.base import ObjectMissing, ObjectStorage, read_all

MARKER_KEY = "blobstore-store-id"


async def pair(database: Database, storage: ObjectStorage) -> str:
    """Return the store id shared by ``database`` and ``storage``, creating it for a brand-new store."""
    db_id = await database.transaction(catalog.store_id)
    try:
        storage_id: str | None = (await read_all(storage, MARKER_KEY)).decode("ascii", "replace").strip()
    except ObjectMissing:
        storage_id = None
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
    if db_id is not None and await database.transaction(catalog.blob_count) > 0:
        raise ConfigurationError(
            f"BLOBSTORE_STORAGE_URL: {storage.url} has no blobstore marker but the database "
            f"references objects; point blobstore at that store's storage"
        )
    if await _holds_objects(storage):
        raise ConfigurationError(
            f"BLOBSTORE_STORAGE_URL: {storage.url} holds blob objects but no blobstore marker; "
            "refusing to adopt it as a new store (its objects would look unreferenced)"
        )
    # A new store: the database settles the id (the first writer wins), then storage gets it.
    candidate = secrets.token_hex(16)
    await database.transaction(lambda conn: catalog.set_store_id(conn, candidate))
    settled = await database.transaction(catalog.store_id)
    assert settled is not None
    await storage.write(MARKER_KEY, settled.encode("ascii"))
    return settled


async def _holds_objects(storage: ObjectStorage) -> bool:
    """True if any blob object exists in ``storage``."""
    async for _ in storage.list(OBJECT_PREFIX):
        return True
    return False
