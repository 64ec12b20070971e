"""Quotas under races: OS processes writing to one tenant on PostgreSQL never push usage past a limit.

Each scenario starts several worker processes (tests/support/quota_workers.py) on one
PostgreSQL database and one storage directory, releases them together, and
meanwhile samples the tenant's usage from the test process. Afterwards usage
never exceeded the limits, exactly as many writes succeeded as the limits
allow, every failure was QuotaExceeded naming usage and limits, nothing of a
failed put remains (references, blob rows, stored objects), and the counters
equal the sums over references (fsck finds nothing).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from blobstore import BlobStore
from blobstore.accounting.quotas import Quota
from tests.accounting.test_quotas import QUOTA_MESSAGE
from tests.support.quota_workers import race
from tests.support.stores import StoreFactory
from tests.support.workers import check_invariants, rows, worker_env

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

PROCESSES = 4
#: PostgreSQL for the metadata, a local directory every process shares for the bytes.
DEPLOYMENT = "postgres-local"


async def _race_sampling_usage(
    store: BlobStore, tmp_path: Path, commands: list[list[str]], tenant: str
) -> tuple[list[dict[str, Any]], list[tuple[int, int]]]:
    """Run the workers; return their reports and every (used_bytes, used_objects) seen while they ran."""
    seen: list[tuple[int, int]] = []
    done = asyncio.Event()

    async def sample() -> None:
        while not done.is_set():
            found = await rows(store, "SELECT used_bytes, used_objects FROM tenants WHERE name = :t", t=tenant)
            seen.extend((int(b), int(o)) for b, o in found)
            await asyncio.sleep(0.005)

    sampler = asyncio.create_task(sample())
    try:
        reports = await race(worker_env(store), tmp_path / "sync", commands)
    finally:
        done.set()
        await sampler
    return reports, seen


async def _assert_exact_and_clean(store: BlobStore, tenant: str) -> Quota:
    """Counters equal the sums over references, storage holds exactly the live blobs, fsck finds nothing."""
    await check_invariants(store, quiescent=True)
    report = await store.fsck()
    assert report.ok, report.problems
    assert report.problems == []
    return await store.quota(tenant)


async def test_racing_processes_get_exactly_max_objects_puts(open_store: StoreFactory, tmp_path: Path) -> None:
    """4 processes x 8 puts under max_objects=12: 12 succeed, 20 fail cleanly; fsck then repairs injected drift."""
    store = await open_store(DEPLOYMENT)
    await store.set_quota("racer", max_objects=12, max_bytes=10**9)
    commands = [["puts", "--tenant", "racer", "--count", "8", "--size", "1000"] for _ in range(PROCESSES)]
    reports, seen = await _race_sampling_usage(store, tmp_path, commands, "racer")
    assert sum(report["succeeded"] for report in reports) == 12
    failures = [message for report in reports for message in report["quota_failures"]]
    assert len(failures) == 32 - 12
    assert all(QUOTA_MESSAGE.fullmatch(message) for message in failures), failures
    assert all("(limit 12)" in message for message in failures)
    assert seen
    assert all(objects <= 12 for _, objects in seen)
    assert len({report["pid"] for report in reports}) == PROCESSES
    after = await _assert_exact_and_clean(store, "racer")
    assert after == Quota("racer", 12_000, 12, 10**9, 12)
    assert len(await store.tenant("racer").list(limit=100)) == 12

    async with store.database.engine.begin() as conn:  # drift the counters behind the store's back
        await conn.execute(text("UPDATE tenants SET used_bytes = 1, used_objects = 99 WHERE name = 'racer'"))
    found = await store.fsck()
    assert [(problem.kind, problem.subject) for problem in found.problems] == [("usage-drift", "tenant racer")]
    assert all(problem.repaired for problem in (await store.fsck(repair=True)).problems)
    assert await _assert_exact_and_clean(store, "racer") == after


async def test_racing_processes_never_exceed_max_bytes(open_store: StoreFactory, tmp_path: Path) -> None:
    """4 processes x 8 puts of 1000 bytes under max_bytes=10,500: exactly 10 succeed; usage never passes the limit."""
    store = await open_store(DEPLOYMENT)
    await store.set_quota("racer", max_bytes=10_500)
    commands = [["puts", "--tenant", "racer", "--count", "8", "--size", "1000"] for _ in range(PROCESSES)]
    reports, seen = await _race_sampling_usage(store, tmp_path, commands, "racer")
    assert sum(report["succeeded"] for report in reports) == 10
    failures = [message for report in reports for message in report["quota_failures"]]
    assert len(failures) == 22
    assert all(QUOTA_MESSAGE.fullmatch(message) and "(limit 10500)" in message for message in failures)
    assert all(used <= 10_500 for used, _ in seen)
    assert await _assert_exact_and_clean(store, "racer") == Quota("racer", 10_000, 10, 10_500, None)


async def test_racing_replacements_copies_and_deletes_keep_usage_exact(
    open_store: StoreFactory, tmp_path: Path
) -> None:
    """Processes replacing, copying and deleting keys under tight limits never exceed them; counters stay exact."""
    store = await open_store(DEPLOYMENT)
    await store.set_quota("racer", max_bytes=9_000, max_objects=4)
    commands = [["mix", "--tenant", "racer", "--count", "24", "--size", "1000"] for _ in range(PROCESSES)]
    reports, seen = await _race_sampling_usage(store, tmp_path, commands, "racer")
    failures = [message for report in reports for message in report["quota_failures"]]
    assert all(QUOTA_MESSAGE.fullmatch(message) for message in failures), failures
    assert all(used <= 9_000 and objects <= 4 for used, objects in seen), max(seen)
    assert sum(report["succeeded"] for report in reports) > 0
    assert failures, "the limits never bit, so this race proved nothing"
    quota = await _assert_exact_and_clean(store, "racer")
    assert quota.used_bytes <= 9_000
    assert quota.used_objects <= 4
