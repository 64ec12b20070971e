"""``blobstore lifecycle set / ls / rm / run`` on the embedded default; keys are written by an in-process store
whose clock stands days in the past, so the real clock of the command finds them old."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from blobstore import BlobStore, Settings
from tests.support.cli_helpers import Run, invoke, new_store


@pytest.fixture
def bs(tmp_path: Path) -> Callable[..., Run]:
    """Run ``blobstore ARGS`` in-process against an embedded store."""
    new_store(tmp_path / "home")

    def run(*args: str) -> Run:
        return invoke(args, home=tmp_path / "home")

    return run


def put_days_ago(home: Path, days: int, tenant: str, *keys: str) -> None:
    """Put each key (its own name as bytes) with the store's clock ``days`` in the past."""
    past = datetime.now(UTC) - timedelta(days=days)

    async def work() -> None:
        async with await BlobStore.open(
            Settings(
                home=home,
                database_url=f"sqlite+aiosqlite:///{home / 'blobstore.db'}",
                storage_url=(home / "blobs").as_uri(),
            ),
            clock=lambda: past,
        ) as store:
            for key in keys:
                await store.tenant(tenant).put(key, key.encode())

    asyncio.run(work())


def test_set_ls_and_rm_manage_rules(bs: Callable[..., Run]) -> None:
    assert "tmp/" in bs("lifecycle", "set", "acme", "--prefix", "tmp/", "--expire-after", "7d").ok().stdout
    bs("lifecycle", "set", "beta", "--prefix", "", "--expire-after", "3600").ok()
    rules = json.loads(bs("lifecycle", "ls", "--json").ok().stdout)
    assert [(r["tenant"], r["prefix"], r["expire_after"], r["abort_multipart_after"]) for r in rules] == [
        ("acme", "tmp/", 604800, None),
        ("beta", "", 3600, None),
    ]
    assert bs("lifecycle", "ls").ok().stdout.splitlines()[1].split() == ["acme", "'tmp/'", "7d", "-", "-"]
    assert json.loads(bs("lifecycle", "ls", "beta", "--json").ok().stdout)[0]["tenant"] == "beta"
    bs("lifecycle", "rm", "acme", "--prefix", "tmp/").ok()
    bs("lifecycle", "rm", "acme", "--prefix", "tmp/").failed("no lifecycle rule")
    assert [r["tenant"] for r in json.loads(bs("lifecycle", "ls", "--json").ok().stdout)] == ["beta"]


@pytest.mark.parametrize("duration", ["7x", "0", "-1d", "1.5h", "", "d7"])
def test_a_bad_duration_is_one_clear_error_and_sets_nothing(bs: Callable[..., Run], duration: str) -> None:
    result = bs("lifecycle", "set", "acme", "--prefix", "tmp/", "--expire-after", duration)
    assert result.code == 2
    assert "--expire-after must be a duration" in result.stderr
    assert json.loads(bs("lifecycle", "ls", "--json").ok().stdout) == []


def test_a_bad_tenant_is_one_clear_error(bs: Callable[..., Run]) -> None:
    bs("lifecycle", "set", "Not A Tenant", "--prefix", "tmp/", "--expire-after", "7d").failed("tenant")


def test_run_expires_old_keys_and_dry_run_changes_nothing(bs: Callable[..., Run], tmp_path: Path) -> None:
    put_days_ago(tmp_path / "home", 10, "acme", "tmp/a", "tmp/bb", "keep/c")
    put_days_ago(tmp_path / "home", 1, "acme", "tmp/young")
    bs("lifecycle", "set", "acme", "--prefix", "tmp/", "--expire-after", "7d").ok()

    dry = json.loads(bs("lifecycle", "run", "--dry-run", "--json").ok().stdout)
    assert (dry["dry_run"], dry["keys_expired"], dry["bytes_expired"]) == (True, 2, 11)
    assert "acme  would expire 2 keys (11 bytes)" in bs("lifecycle", "run", "--dry-run").ok().stdout

    done = json.loads(bs("lifecycle", "run", "--json", "--batch", "1").ok().stdout)
    assert (done["keys_expired"], done["batches"], done["tenants"]) == (
        2,
        2,
        {"acme": {"keys": 2, "bytes": 11, "uploads_aborted": 0}},
    )
    listed = bs("ls", "acme", "--json").ok().stdout
    assert [item["key"] for item in json.loads(listed)] == ["keep/c", "tmp/young"]
    assert "expired 0 keys" in bs("lifecycle", "run").ok().stdout


def test_put_expires_in_records_the_keys_own_expiry(bs: Callable[..., Run], tmp_path: Path) -> None:
    """``put --expires-in 2w`` records the key's expiry two weeks after its write; a bad duration stores nothing."""
    source = tmp_path / "report.txt"
    source.write_bytes(b"temporary")
    bs("put", "acme", "tmp/report.txt", str(source), "--expires-in", "2w").ok()
    bs("put", "acme", "tmp/bad.txt", str(source), "--expires-in", "soon").failed("--expires-in must be", code=2)
    with sqlite3.connect(tmp_path / "home" / "blobstore.db") as db:
        stored = db.execute("SELECT key, created_at, expires_at FROM refs ORDER BY key").fetchall()
    [(key, created_at, expires_at)] = stored
    assert key == "tmp/report.txt"
    assert datetime.fromisoformat(expires_at) - datetime.fromisoformat(created_at) == timedelta(weeks=2)


def test_set_a_transition_and_run_it(bs: Callable[..., Run], tmp_path: Path) -> None:
    put_days_ago(tmp_path / "home", 31, "acme", "logs/a", "logs/b")
    shown = bs(
        "lifecycle", "set", "acme", "--prefix", "logs/", "--transition-after", "30d", "--storage-class", "STANDARD_IA"
    )
    assert "STANDARD_IA after 30d" in shown.ok().stdout
    bs(
        "lifecycle", "set", "acme", "--prefix", "logs/", "--transition-after", "30d", "--storage-class", "GLACIER"
    ).failed("storage class must be one of")
    bs("lifecycle", "set", "acme", "--prefix", "logs/", "--transition-after", "30d").failed("go together", code=2)
    assert "would move 2 blobs (12 bytes) to STANDARD_IA" in bs("lifecycle", "run", "--dry-run").ok().stdout
    moved = json.loads(bs("lifecycle", "run", "--json").ok().stdout)["transitions"]
    assert (moved["blobs_moved"], moved["classes"]) == (2, {"STANDARD_IA": {"blobs": 2, "bytes": 12}})
    assert json.loads(bs("lifecycle", "run", "--json").ok().stdout)["transitions"]["blobs_moved"] == 0
