"""The upload protocol's write half (blobstore/protocol/uploads.py): what it asks the database on its error path."""

from __future__ import annotations

from dataclasses import replace

import pytest

from blobstore import StorageUnavailable
from blobstore.testing.faults import Fault, FaultyStorage
from blobstore.testing.statements import sql_sent
from tests.support.stores import StoreFactory


async def test_a_failed_upload_asks_whether_gc_took_it_without_taking_the_write_lock(
    open_store: StoreFactory,
) -> None:
    """After a failed write the uploader reads its upload row's state (did GC reclaim it?) as a read: on
    SQLite no BEGIN IMMEDIATE precedes that one SELECT, so it never queues behind another writer."""
    store = await open_store("sqlite-local")
    storage = FaultyStorage(store.storage)
    store.core = replace(store.core, storage=storage)
    fault = storage.inject(Fault("write", error=StorageUnavailable("injected: 503")))
    with sql_sent(store) as raw, pytest.raises(StorageUnavailable):
        await store.tenant("acme").put("k", b"bytes the write refuses")
    sent = [" ".join(statement.split()).upper() for statement in raw]
    assert fault.hits == 1
    state_reads = [i for i, statement in enumerate(sent) if statement.startswith("SELECT BLOBS.STATE FROM BLOBS")]
    assert len(state_reads) == 1, sent
    assert not sent[state_reads[0] - 1].startswith("BEGIN"), sent
