"""Multipart uploads cut short by a crash (blobstore.multipart over fault-injected storage), on every deployment:
nothing acknowledged is lost, a retried completion completes, and GC past grace leaves exactly what is referenced
with every count exact."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Literal

import pytest

from blobstore import BlobStore, multipart
from blobstore.testing.faults import Fault, SimulatedCrash, dies_with
from tests.protocol.test_faults import faulty
from tests.support.stores import FakeClock, StoreFactory
from tests.support.workers import invariant_violations

MIB = 2**20
GRACE = 3600.0
#: A crashed put's staged or spooled file is left open, as a dead process's would be (no clean-up runs past it).
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), MIB):
        yield data[start : start + MIB]


@pytest.mark.parametrize(
    ("operation", "phase"),
    [("read", "midway"), ("write", "before"), ("write", "after")],
    ids=["reading-a-part", "before-the-object-is-written", "after-the-object-is-written"],
)
async def test_a_completion_cut_short_by_a_crash_is_completed_by_a_retry(
    store: BlobStore,
    open_store: StoreFactory,
    deployment: str,
    clock: FakeClock,
    operation: Literal["read", "write"],
    phase: Literal["before", "midway", "after"],
) -> None:
    """A crash while Complete reads the parts or writes the object acknowledges nothing and changes nothing a
    client sees: the upload and its parts are still there, a retry in a new process completes it (a second
    retry answers that completion again), and GC past grace reclaims what the crash left."""
    storage = faulty(store)
    store.database.transaction = dies_with(storage, store.database.transaction)  # type: ignore[method-assign]
    core = store.core
    first, tail = os.urandom(5 * MIB), os.urandom(MIB)
    upload = await multipart.create(core, "acme", "b", "k", content_type="text/plain", metadata={"m": "1"})
    parts = [
        (number, (await multipart.upload_part(core, "acme", "b", "k", upload.id, number, chunks(body))).etag)
        for number, body in ((1, first), (2, tail))
    ]
    crash = storage.inject(Fault(operation, error=SimulatedCrash(), phase=phase, key_prefix="data/"))
    with pytest.raises(SimulatedCrash):
        await multipart.complete(core, "acme", "b", "k", upload.id, parts)
    assert crash.hits == 1

    again = await open_store(deployment)  # a new process over the same database and storage
    assert not await again.tenant("acme").exists("b/k")
    _, listed, _ = await multipart.list_parts(again.core, "acme", "b", "k", upload.id)
    assert [part.number for part in listed] == [1, 2]
    completed = await multipart.complete(again.core, "acme", "b", "k", upload.id, parts)
    assert await again.tenant("acme").get("b/k") == first + tail
    assert (completed.info.content_type, completed.info.metadata) == ("text/plain", {"m": "1"})
    assert (await multipart.complete(again.core, "acme", "b", "k", upload.id, parts)).etag == completed.etag
    assert (await again.quota("acme")).used_bytes == len(first + tail)

    clock.advance_past_real_time(GRACE + again.settings.upload_lease_seconds + 1)
    await again.gc()
    assert await invariant_violations(again) == []


async def test_a_part_cut_short_by_a_crash_leaves_the_upload_as_it_was(
    store: BlobStore, open_store: StoreFactory, deployment: str, clock: FakeClock
) -> None:
    """A crash once a part's bytes are written, before its part row commits, stages nothing: the upload keeps its
    other parts and quota, the part can be uploaded again, and GC past the lease reclaims the leftovers."""
    storage = faulty(store)
    store.database.transaction = dies_with(storage, store.database.transaction)  # type: ignore[method-assign]
    core = store.core
    upload = await multipart.create(core, "acme", "b", "k", content_type=None, metadata={})
    kept = os.urandom(5 * MIB)
    await multipart.upload_part(core, "acme", "b", "k", upload.id, 1, chunks(kept))
    storage.inject(Fault("write", error=SimulatedCrash(), phase="after", key_prefix="data/"))
    with pytest.raises(SimulatedCrash):
        await multipart.upload_part(core, "acme", "b", "k", upload.id, 2, chunks(os.urandom(3 * MIB)))

    again = await open_store(deployment)
    _, listed, _ = await multipart.list_parts(again.core, "acme", "b", "k", upload.id)
    assert [(part.number, part.size) for part in listed] == [(1, len(kept))]
    assert (await again.quota("acme")).used_bytes == len(kept)
    await multipart.upload_part(again.core, "acme", "b", "k", upload.id, 2, chunks(b"again"))
    clock.advance_past_real_time(GRACE + again.settings.upload_lease_seconds + 1)
    await again.gc()
    assert await invariant_violations(again) == []
    _, listed, _ = await multipart.list_parts(again.core, "acme", "b", "k", upload.id)
    listing = [(part.number, part.etag) for part in listed]
    completed = await multipart.complete(again.core, "acme", "b", "k", upload.id, listing)
    assert await again.tenant("acme").get("b/k") == kept + b"again"
    assert completed.etag.endswith('-2"')
