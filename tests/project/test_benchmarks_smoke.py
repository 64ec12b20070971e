"""The benchmark suite runs end to end at tiny sizes and reports what it promises (no timing thresholds)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from benchmarks import (
    backup_tools,
    batch_puts,
    compressed_gets,
    compressed_puts,
    compressed_ranges,
    compression_ratio,
    dedup_puts,
    dry_run,
    gc_reclaim,
    get_reads,
    import_files,
    large_dedup,
    listing,
    maintenance_memory,
    stat_reads,
)
from benchmarks.harness import Context
from benchmarks.output import machine_info, markdown, rows_from_json, text_table, to_json, write_json
from benchmarks.runner import BENCHMARKS, parse_only, run_benchmarks

TINY = {
    "P1": dedup_puts.Sizes(puts=5, rounds=2),
    "P3": large_dedup.Sizes(size=2 * 1024 * 1024, rounds=2),
    "P5": listing.Sizes(keys=3000, rounds=2, pages=1, page=100),
    "P8": gc_reclaim.Sizes(blobs=50, rounds=2),
    "P9": stat_reads.Sizes(reads=10, rounds=2),
    "P10": get_reads.Sizes(reads=10, rounds=2),
    "P12": batch_puts.Sizes(puts=10, rounds=2),
    "I1": import_files.Sizes(files=20, size=4096, rounds=2),
    "I2": dry_run.Sizes(files=6, size=1024 * 1024, rounds=2),
}


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The JSON document of a tiny quick run of P1, P3, P5, P8, I1 and I2 on SQLite and a local directory."""
    workdir = tmp_path_factory.mktemp("bench")
    ctx = Context(quick=True, workdir=workdir, postgres_admin_url=None, s3=False, verbose=False, sizes=TINY)
    rows = run_benchmarks(ctx, list(TINY))
    path = workdir / "latest.json"
    write_json(path, to_json(rows, machine_info(), "quick", 1.0))
    assert text_table(rows).count("\n") == len(rows) + 1
    assert "| P1 |" in markdown(rows, machine_info(), "quick", "python -m benchmarks --quick")
    document = dict(json.loads(path.read_text()))
    assert text_table(rows_from_json(document)) == text_table(rows), "a saved run renders as it printed"
    return document


def test_json_describes_the_run_and_the_machine(document: dict[str, object]) -> None:
    """Mode, duration and machine facts (cores, CPU, Python, date) are in the document."""
    assert document["mode"] == "quick"
    machine = document["machine"]
    assert isinstance(machine, dict)
    assert {"nproc", "cpu_model", "python", "date"} <= machine.keys()
    assert machine["nproc"] >= 1


def test_every_measured_row_has_positive_figures(document: dict[str, object]) -> None:
    """Each benchmark asked for measured SQLite rows whose subject, baseline and ratio are positive numbers."""
    results = document["results"]
    assert isinstance(results, list)
    measured = [row for row in results if row["status"] in ("pass", "miss")]
    assert {row["id"] for row in measured} == set(TINY)
    for row in measured:
        for side in ("subject", "baseline"):
            assert row[side]["value"] > 0, row
            assert row[side]["unit"], row
        assert isinstance(row["ratio"], float), row
        assert math.isfinite(row["ratio"]), row
        assert row["ratio"] > 0, row
        assert row["target"]["op"] in (">=", "<="), row
        assert len(row["samples"]["subject_seconds"]) == len(row["samples"]["baseline_seconds"]) == 2, row
        assert len(row["round_ratios"]) == 2, row
        assert all(ratio > 0 for ratio in row["round_ratios"]), row


def test_postgres_rows_are_skipped_not_dropped_when_postgres_is_off(document: dict[str, object]) -> None:
    """A run without PostgreSQL still lists the PostgreSQL variants, marked ``skip``."""
    results = document["results"]
    assert isinstance(results, list)
    skipped = {row["id"] for row in results if row["status"] == "skip"}
    assert skipped == {"P1", "P5", "P8", "P9", "P12"}
    assert all(row["status"] != "error" for row in results)


def test_maintenance_memory_measures_gc_and_fsck_in_child_processes(tmp_path: Path) -> None:
    """P13 at 200 objects: one row for fsck and one for gc, each a positive peak above a positive baseline."""
    sizes = {"P13": maintenance_memory.Sizes(objects=200)}
    ctx = Context(quick=True, workdir=tmp_path, postgres_admin_url=None, s3=False, verbose=False, sizes=sizes)
    rows = run_benchmarks(ctx, ["P13"])
    assert [row.what for row in rows] == ["peak RSS of fsck over 200 objects", "peak RSS of gc over 200 objects"]
    for row in rows:
        assert row.state is None, row.notes
        assert row.baseline is not None
        assert row.baseline > 0
        assert row.subject is not None
        assert row.subject >= row.baseline
        assert row.figure == pytest.approx(row.subject - row.baseline)


def test_compression_benchmarks_measure_ratios_and_reads(tmp_path: Path) -> None:
    """C1-C4 at tiny sizes: C1's stored/logical rows (compressible well under 1, media about 1), C2 and C3's
    paired speeds, and C4's ranged reads made in one storage request each."""
    mib = 1024 * 1024
    sizes = {
        "C1": compression_ratio.Sizes(
            256 * 1024, 128 * 1024, 256 * 1024, mib, mib, pdfs=1, pdf_pages=2, jpegs=64 * 1024
        ),
        "C2": compressed_puts.Sizes(2 * mib, rounds=2),
        "C3": compressed_gets.Sizes(2 * mib, rounds=2),
        "C4": compressed_ranges.Sizes(4 * mib, rounds=2),
    }
    ctx = Context(quick=True, workdir=tmp_path, postgres_admin_url=None, s3=False, verbose=False, sizes=sizes)
    rows = {(row.id, row.variant): row for row in run_benchmarks(ctx, list(sizes))}
    assert set(rows) == {
        ("C1", "compressible"),
        ("C1", "media"),
        ("C2", "compressible"),
        ("C2", "random"),
        ("C3", "get"),
        ("C3", "streamed"),
        ("C4", "local+sqlite"),
    }
    for row in rows.values():
        assert row.state is None, row.notes
        assert row.subject is not None
        assert row.subject > 0
        assert row.baseline is not None
        assert row.baseline > 0
    assert rows["C1", "compressible"].subject < 0.6
    assert rows["C1", "media"].subject == pytest.approx(1, abs=0.05)
    assert "1 storage request(s) per read" in rows["C4", "local+sqlite"].notes
    assert "at most 2 frames" in rows["C4", "local+sqlite"].notes


@pytest.mark.skipif(
    not all(shutil.which(tool) for tool in backup_tools.TOOLS), reason="restic or borg is not installed"
)
def test_the_backup_tools_benchmark_compares_bytes_and_time_on_each_dataset(tmp_path: Path) -> None:
    """C5 at tiny sizes: per dataset, stored bytes against borg's and import time against restic's."""
    sizes = {"C5": backup_tools.Sizes(30, 20, 4096, 128 * 1024, 256 * 1024, versions=2)}
    ctx = Context(quick=True, workdir=tmp_path, postgres_admin_url=None, s3=False, verbose=False, sizes=sizes)
    rows = {row.variant: row for row in run_benchmarks(ctx, ["C5"])}
    assert set(rows) == {f"{name} {kind}" for name in ("source", "uploads", "document") for kind in ("bytes", "time")}
    for row in rows.values():
        assert row.state is None, row.notes
        assert row.subject is not None
        assert row.subject > 0
        assert row.baseline is not None
        assert row.baseline > 0
    assert rows["uploads bytes"].subject < 1  # duplicates and text stored once, compressed
    assert "borg zstd,3" in rows["document bytes"].notes
    assert "restic" in rows["document time"].notes


def test_only_accepts_known_ids_in_any_case() -> None:
    """``--only p3,P1`` selects in table order; an unknown id is refused."""
    assert parse_only("p3,P1") == ["P1", "P3"]
    assert parse_only(None) == list(BENCHMARKS)
    with pytest.raises(ValueError, match="P99"):
        parse_only("P99")


def test_results_directory_is_ignored_by_git() -> None:
    """benchmarks/results/ holds local output only."""
    gitignore = Path(__file__).resolve().parents[2] / ".gitignore"
    assert "benchmarks/results/" in gitignore.read_text().splitlines()
