"""The soak: its model and audit can fail, and a one-minute soak with faults and kills passes its audit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from benchmarks.soak_audit import audit
from benchmarks.soak_model import TENANTS, Journal, Model, content, digest_of, key_of, read_journal
from tests.support.s3_server import S3Endpoint
from tests.support.stores import StoreFactory

ROOT = Path(__file__).resolve().parents[2]
TENANT = TENANTS[0]
K0, K1, K2 = key_of(0, 0), key_of(0, 1), key_of(0, 2)


def mutation(call: str, op: str, key: str, outcome: str | None, **fields: Any) -> list[dict[str, Any]]:
    """The journal records of one call that changes ``key``; ``outcome`` None: killed inside the call."""
    begin = {"t": "begin", "id": call, "op": op, "tenant": TENANT, "key": key, **fields}
    return [begin] if outcome is None else [begin, {**begin, "t": "end", "outcome": outcome}]


def read(call: str, key: str, seen: str | None) -> dict[str, Any]:
    outcome = "missing" if seen is None else "ok"
    return {"t": "end", "id": call, "op": "get", "tenant": TENANT, "key": key, "outcome": outcome, "value": seen}


def test_a_call_killed_midway_allows_the_old_and_the_new_value_and_nothing_else() -> None:
    """After a put cut short by a kill, a read may see the old or the new value; any other is a violation."""
    history = [*mutation("0.1", "put", K0, "ok", value="old"), *mutation("0.2", "put", K0, None, value="new")]
    model = Model.replay(0, [*history, {"t": "start"}])
    assert model.possible(TENANT, K0) == {"old", "new"}
    for seen in ("old", "new"):
        assert not Model.replay(0, [*history, {"t": "start"}, read("1.1", K0, seen)]).violations
    for seen in (None, "other"):
        assert Model.replay(0, [*history, {"t": "start"}, read("1.1", K0, seen)]).violations


def test_acknowledged_calls_pin_the_value_and_a_read_narrows_an_unknown_one() -> None:
    """A put, copy and delete that returned fix what the keys hold; a read after an unknown delete decides it."""
    records = [
        *mutation("0.1", "put", K0, "ok", value="a"),
        *mutation("0.2", "copy", K1, "ok", src=K0),
        *mutation("0.3", "delete", K0, "error"),
        read("0.4", K0, "a"),
        *mutation("0.5", "copy", K2, "missing", src=key_of(0, 3)),
    ]
    model = Model.replay(0, records)
    assert (model.possible(TENANT, K0), model.possible(TENANT, K1), model.possible(TENANT, K2)) == (
        {"a"},
        {"a"},
        {None},
    )
    assert not model.violations
    lying = Model.replay(0, [*records, *mutation("0.6", "copy", K2, "ok", src=key_of(0, 4))])
    assert lying.violations == [f"copy from {TENANT}/{key_of(0, 4)} succeeded, but the key cannot exist"]


def test_the_journal_skips_a_line_torn_by_a_kill(tmp_path: Path) -> None:
    """Records are read back in order; an unterminated last line (the process died writing it) is dropped."""
    path = tmp_path / "ops-0.jsonl"
    journal = Journal(path)
    journal.append({"t": "start"})
    journal.append({"t": "end", "op": "gc"})
    journal.close()
    with path.open("a") as torn:
        torn.write('{"t": "beg')
    assert list(read_journal(path)) == [{"t": "start"}, {"t": "end", "op": "gc"}]


@pytest.mark.postgres
async def test_the_audit_reports_lost_wrong_stray_and_miscounted_data(open_store: StoreFactory) -> None:
    """On a real PostgreSQL + S3 store: a lost key, a key with other bytes, a key nobody wrote, a refcount and a
    usage counter that drifted are each reported; the keys that are right are not."""
    store = await open_store("postgres-s3", gc_grace_seconds=0.0)
    tenant = store.tenant(TENANT)
    model = Model.replay(
        0,
        [
            *mutation("0.1", "put", K0, "ok", value="right"),
            *mutation("0.2", "put", K1, "ok", value="lost"),
            *mutation("0.3", "put", K2, "ok", value="expected"),
            *mutation("0.4", "put", key_of(0, 3), None, value="maybe"),
        ],
    )
    await tenant.put(K0, content("right"))
    await tenant.put(K2, content("something else"))
    await store.tenant(TENANTS[2]).put("stray/key", b"nobody's")
    async with store.database.engine.begin() as conn:
        await conn.execute(text("UPDATE blobs SET refcount = 2 WHERE digest = :d"), {"d": digest_of(b"nobody's")})
        await conn.execute(text("UPDATE tenants SET used_bytes = used_bytes + 1 WHERE name = :t"), {"t": TENANT})

    result = await audit(store.settings, [model], wait=0.0)

    problems = "\n".join(result.problems)
    assert f"{TENANT}/{K1} is gone" in problems
    assert f"{TENANT}/{K2} holds" in problems
    assert f"{TENANTS[2]}/stray/key exists, but no worker wrote it" in problems
    stored = len(content("right")) + len(content("something else"))
    assert f"tenant {TENANT} is charged {stored + 1} bytes / 2 keys, but holds {stored} bytes in 2 keys" in problems
    assert "refcount 2 but 1 refs" in problems
    assert "fsck --read-data: refcount-drift" in problems
    assert K0 not in problems
    assert key_of(0, 3) not in problems, "a put cut short may have left the key absent"
    assert result.keys_checked == 2


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_one_minute_soak_with_faults_and_kills_passes_its_audit(
    postgres_url: str, s3: S3Endpoint, tmp_path: Path
) -> None:
    """`python -m benchmarks.soak --minutes 1`: every kind of call was acknowledged, storage faults, dropped
    database connections, an S3 outage (puts spooled, then drained) and at least two SIGKILLs happened, and the
    audit found nothing."""
    figures = tmp_path / "soak.json"
    env = {**os.environ, "BLOBSTORE_TEST_S3_ENDPOINT": s3.url}  # the session's S3 server; PostgreSQL is found alike
    run = subprocess.run(
        [
            *(sys.executable, "-m", "benchmarks.soak", "--minutes", "1", "--outage", "15"),
            *("--json", str(figures), "--workdir", str(tmp_path)),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr[-3000:]}"
    doc = json.loads(figures.read_text())
    assert doc["passed"]
    assert doc["audit"]["passed"]
    assert doc["audit"]["keys_checked"] > 0
    assert {"put", "get", "copy", "delete", "list", "gc", "fsck"} <= doc["operations"].keys()
    assert doc["outcomes"]["put deduplicated"] > 0
    assert doc["faults"]["sigkills"] >= 2
    assert doc["faults"]["db_connections_terminated"] > 0
    assert doc["faults"]["storage_errors_injected"] > 0
    assert doc["faults"]["s3_outage_seconds"] == 15
    assert doc["gc"]["drained"] + doc["audit"]["drained"] > 0, "puts during the outage were spooled and drained"
    assert set(doc["errors"]) <= {"StorageUnavailable"}
