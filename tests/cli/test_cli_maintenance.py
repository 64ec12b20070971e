"""``blobstore gc``, ``blobstore fsck`` and ``blobstore compact`` on the embedded default."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.cli_helpers import Run, invoke


@pytest.fixture
def bs(tmp_path: Path) -> Callable[..., Run]:
    """Run ``blobstore ARGS`` in-process against an embedded store; ``grace`` sets BLOBSTORE_GC_GRACE."""

    def run(*args: str, grace: str = "3600") -> Run:
        return invoke(args, home=tmp_path / "home", env={"BLOBSTORE_GC_GRACE": grace})

    return run


@pytest.fixture
def deleted_blob(bs: Callable[..., Run], tmp_path: Path) -> Path:
    """A store with one blob whose only key was deleted; returns the object's directory."""
    source = tmp_path / "value.bin"
    source.write_bytes(b"v" * 1000)
    bs("put", "acme", "k", str(source)).ok()
    bs("rm", "acme", "k").ok()
    return tmp_path / "home" / "blobs" / "data"


def objects_under(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()]


def test_gc_keeps_unreferenced_bytes_within_the_grace_period(bs: Callable[..., Run], deleted_blob: Path) -> None:
    """With the default grace, a just-deleted blob is neither reclaimed nor planned."""
    assert json.loads(bs("gc", "--json").ok().stdout)["blobs_reclaimed"] == 0
    assert len(objects_under(deleted_blob)) == 1


def test_gc_dry_run_lists_the_plan_and_deletes_nothing(bs: Callable[..., Run], deleted_blob: Path) -> None:
    """--dry-run names every object it would delete (as text; JSON gives the counts) and leaves storage alone."""
    text = bs("gc", "--dry-run", grace="0").ok().stdout
    assert "would delete data/" in text
    assert "(unreferenced)" in text
    assert "would reclaim 1 blob (1.0 kB)" in text
    plan = json.loads(bs("gc", "--dry-run", "--json", grace="0").ok().stdout)
    assert (plan["dry_run"], plan["blobs_reclaimed"], plan["bytes_reclaimed"]) == (True, 1, 1000)
    assert len(objects_under(deleted_blob)) == 1


def test_gc_past_grace_reclaims_and_reports_stats(bs: Callable[..., Run], deleted_blob: Path) -> None:
    """Past grace, gc deletes the object and its JSON stats say so."""
    stats = json.loads(bs("gc", "--json", grace="0").ok().stdout)
    assert (stats["blobs_reclaimed"], stats["bytes_reclaimed"], stats["dry_run"]) == (1, 1000, False)
    assert objects_under(deleted_blob) == []


def test_fsck_exits_nonzero_on_a_missing_object_and_names_it(bs: Callable[..., Run], tmp_path: Path) -> None:
    """fsck reports a referenced object that vanished from storage and exits 1; --repair cannot invent it."""
    source = tmp_path / "value.bin"
    source.write_bytes(b"w" * 10)
    bs("put", "acme", "k", str(source)).ok()
    assert "ok" in bs("fsck").ok().stdout
    (stored,) = objects_under(tmp_path / "home" / "blobs" / "data")
    stored.unlink()
    failed = bs("fsck", "--json")
    assert failed.code == 1
    report = json.loads(failed.stdout)
    assert report["ok"] is False
    assert [problem["kind"] for problem in report["problems"]] == ["missing-object"]
    assert bs("fsck", "--repair").code == 1


def test_fsck_read_data_finds_a_corrupted_object(bs: Callable[..., Run], tmp_path: Path) -> None:
    """Same-size corruption passes the plain check and is found by --read-data."""
    source = tmp_path / "value.bin"
    source.write_bytes(b"x" * 100)
    bs("put", "acme", "k", str(source)).ok()
    (stored,) = objects_under(tmp_path / "home" / "blobs" / "data")
    stored.write_bytes(b"y" * 100)
    bs("fsck").ok()
    run = bs("fsck", "--read-data")
    assert run.code == 1
    assert "PROBLEM: corrupted-object" in run.stdout


@pytest.fixture
def raw_blob(bs: Callable[..., Run], tmp_path: Path) -> Path:
    """A store whose one blob (100 kB of text under acme/k) is stored as before frames; its object's path."""
    data = b"a line of text that repeats\n" * 4000
    source = tmp_path / "value.txt"
    source.write_bytes(data)
    bs("put", "acme", "k", str(source)).ok()
    (stored,) = objects_under(tmp_path / "home" / "blobs" / "data")
    stored.write_bytes(data)
    with contextlib.closing(sqlite3.connect(tmp_path / "home" / "blobstore.db")) as db, db:
        db.execute("UPDATE blobs SET frames = NULL, stored_size = NULL")
    return stored


def test_compact_rewrites_old_blobs_and_reports_the_bytes_saved(
    bs: Callable[..., Run], raw_blob: Path, tmp_path: Path
) -> None:
    """--dry-run estimates and writes nothing; a run rewrites, says what it saved (text and JSON), reruns
    find nothing left, and the key reads back the same."""
    dry = bs("compact", "--dry-run").ok().stdout
    assert dry.startswith("would rewrite 1 blob: 112.0 kB before, ")
    assert "would save" in dry
    assert objects_under(raw_blob.parents[1]) == [raw_blob]
    stats = json.loads(bs("compact", "--tenant", "acme", "--json", grace="0").ok().stdout)
    assert (stats["dry_run"], stats["blobs_rewritten"], stats["bytes_before"]) == (False, 1, 112_000)
    assert stats["bytes_saved"] == 112_000 - stats["bytes_after"] > 100_000
    assert stats["failures"] == []
    assert len(objects_under(raw_blob.parents[1])) == 2  # the old object waits for gc (after the grace, 0 here)
    assert bs("compact").ok().stdout.startswith("rewrote 0 blobs: 0 bytes before, 0 bytes after, saved 0 bytes in ")
    assert bs("get", "acme", "k").ok().stdout_bytes == b"a line of text that repeats\n" * 4000
    bs("gc", grace="0").ok()
    assert "ok" in bs("fsck", "--read-data").ok().stdout
    assert len(objects_under(raw_blob.parents[1])) == 1


def test_compact_reports_a_blob_it_cannot_read_and_exits_1(bs: Callable[..., Run], raw_blob: Path) -> None:
    raw_blob.write_bytes(b"not what was put")
    failed = bs("compact")
    assert failed.code == 1
    assert failed.complaints.startswith("blobstore: could not compact data/")
    assert failed.stdout.startswith("rewrote 0 blobs")


def test_compact_refuses_a_bad_tenant_name(bs: Callable[..., Run]) -> None:
    bs("compact", "--tenant", "Not A Tenant!").failed("tenant")
