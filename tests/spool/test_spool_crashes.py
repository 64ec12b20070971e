"""Kill points of spooling and draining (docs/spool.md#crashes): a real child process is killed with SIGKILL
while it spools a put or drains the spool (tests/support/spool_crash_worker.py); then the node restarts,
drains, collects past grace, and nothing acknowledged is lost, nothing leaks (bucket or spool), fsck is clean.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import pytest

from blobstore import NotFound
from tests.support.spool_crash_worker import CRASH_KEY, POINTS, PRELUDE, SPOOLED, TENANT
from tests.support.stores import FakeClock, StoreFactory
from tests.support.workers import data_objects, invariant_violations, rows, worker_env

WORKER = Path(__file__).parents[1] / "support" / "spool_crash_worker.py"


def spool_files(spool: Path) -> list[Path]:
    return [path for path in spool.rglob("*") if path.is_file() and path.name != ".probe"]


@pytest.mark.parametrize("point", POINTS)
async def test_a_process_killed_while_spooling_or_draining_loses_nothing_and_leaks_nothing(
    open_store: StoreFactory, tmp_path: Path, clock: FakeClock, point: str
) -> None:
    spool = {"spool_dir": tmp_path / "spool", "spool_max_bytes": 2**20, "node_id": "node-a"}
    store = await open_store("sqlite-local", **spool)
    env = worker_env(store) | {
        "BLOBSTORE_SPOOL_DIR": str(tmp_path / "spool"),
        "BLOBSTORE_SPOOL_MAX_BYTES": str(2**20),
        "BLOBSTORE_NODE_ID": "node-a",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(WORKER), point, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == -signal.SIGKILL, f"worker exited with {proc.returncode}:\n{out.decode()}{err.decode()}"
    lines = out.decode().splitlines()
    assert lines[-1] == f"CRASH {point}"
    acknowledged = [line.split()[-1] for line in lines if line.startswith("ACK put")]
    spooled = await rows(store, "SELECT state FROM blobs WHERE spooled_on = 'node-a'")
    assert spooled, "the kill came while something was spooled"

    restarted = await open_store("sqlite-local", **spool)  # the node again, after its crash
    await restarted.drain_spool()
    clock.advance_past_real_time(restarted.settings.gc_grace_seconds + restarted.settings.upload_lease_seconds + 1)
    await restarted.gc()
    await restarted.drain_spool()  # leftovers GC made spool-free
    tenant = restarted.tenant(TENANT)
    for key in acknowledged:
        assert await tenant.get(key) == (PRELUDE | SPOOLED)[key]
    with pytest.raises(NotFound):
        await tenant.get(CRASH_KEY)
    assert await rows(restarted, "SELECT id FROM blobs WHERE spooled_on IS NOT NULL") == []
    assert spool_files(tmp_path / "spool" / "data") == []
    assert await invariant_violations(restarted) == []
    assert len(await data_objects(restarted)) == len({(PRELUDE | SPOOLED)[key] for key in acknowledged})
    report = await restarted.fsck(read_data=True)
    assert report.ok, report.problems
