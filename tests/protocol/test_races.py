"""Races between OS processes on one PostgreSQL database and one S3 bucket (tests/support/race_worker.py).

With a grace period of 0 seconds GC reclaims a blob the moment its last
reference goes, so puts of the same bytes, deletes of the last reference and
GC runs really race on the same blob row and object.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from blobstore import BlobStore
from tests.support.digests import digest_of
from tests.support.gate import launch_gated
from tests.support.race_worker import PAYLOAD, STORM_PAYLOAD, TENANT, own_keys
from tests.support.stores import FakeClock, StoreFactory
from tests.support.workers import data_objects, invariant_violations, rows, worker_env

WORKER = Path(__file__).parents[1] / "support" / "race_worker.py"
DEPLOYMENT = "postgres-s3"
#: The churn: PROCESSES workers of ROUNDS rounds each (a round is a put and its read-back, a delete,
#: a GC run or a read).
PROCESSES = 3
ROUNDS = 500


async def run_workers(store: BlobStore, sync: Path, commands: list[list[str]]) -> list[dict[str, Any]]:
    """Start one race_worker process per command, release them together, return their JSON reports."""
    return await launch_gated(WORKER, worker_env(store), sync, commands, timeout=240)


@pytest.mark.slow
@pytest.mark.postgres
async def test_puts_deletes_and_gc_racing_on_the_same_bytes_lose_nothing_and_leak_nothing(
    open_store: StoreFactory, tmp_path: Path, clock: FakeClock
) -> None:
    """Processes racing put / delete-last-reference / GC (grace 0) on the same bytes lose and leak nothing.

    PROCESSES x ROUNDS rounds: no acknowledged put is ever unreadable, no reference ever names a missing
    object, refcounts and usage stay exact, and a final GC leaves exactly the referenced object.
    """
    store = await open_store(DEPLOYMENT, gc_grace_seconds=0.0)
    reports = await run_workers(
        store, tmp_path / "sync", [["churn", "--rounds", str(ROUNDS), "--seed", str(seed)] for seed in range(PROCESSES)]
    )
    assert [report["violations"] for report in reports] == [[]] * PROCESSES
    done: Counter[str] = Counter()
    for report in reports:
        done.update(report["done"])
    operations = sum(n for op, n in done.items() if op != "gc-reclaimed")
    print(f"\nraces: {PROCESSES} processes, {operations} operations: {dict(sorted(done.items()))}")
    assert min(done["put"], done["delete"], done["gc"]) > 0
    assert done["gc-reclaimed"] > 0, "GC never reclaimed anything: nothing raced"

    tenant = store.tenant(TENANT)
    for index, report in enumerate(reports):  # each worker's own keys are exactly what it last put
        for key in own_keys(index):
            assert await tenant.exists(key) == (key in report["held"])
    refs = [key for (key,) in await rows(store, "SELECT key FROM refs")]
    for key in refs:
        assert await tenant.get(key) == PAYLOAD
    assert await invariant_violations(store, quiescent=False) == []

    clock.now = datetime.now(UTC) + timedelta(seconds=1)  # the workers ran on the real clock
    await store.gc()
    assert await invariant_violations(store) == []
    assert len(await data_objects(store)) == (1 if refs else 0)
    assert (await store.fsck(read_data=True)).ok


@pytest.mark.slow
@pytest.mark.postgres
async def test_a_storm_of_identical_puts_stores_one_object_and_counts_every_reference(
    open_store: StoreFactory, tmp_path: Path
) -> None:
    """64 concurrent puts of the same new bytes (4 processes x 16) store one object with refcount 64."""
    store = await open_store(DEPLOYMENT)
    reports = await run_workers(store, tmp_path / "sync", [["storm", "--count", "16"]] * 4)
    assert [report["digests"] for report in reports] == [[digest_of(STORM_PAYLOAD)]] * 4
    blobs = await rows(store, "SELECT state, refcount FROM blobs WHERE digest = :d", d=digest_of(STORM_PAYLOAD))
    assert [tuple(blob) for blob in blobs] == [("live", 64)]
    assert len(await data_objects(store)) == 1
    assert len((await store.tenant(TENANT).list("storm/")).items) == 64
    assert await invariant_violations(store) == []
