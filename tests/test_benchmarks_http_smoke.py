"""The HTTP benchmarks (H1-H3) run end to end at tiny sizes and report measured rows (no timing thresholds)."""

from __future__ import annotations

from pathlib import Path

from benchmarks import http_get, http_memory, http_put
from benchmarks.harness import Context
from benchmarks.runner import run_benchmarks

TINY = {
    "H1": http_get.Sizes(gets_per_client=2, rounds=2),
    "H2": http_put.Sizes(size=2 * 1024 * 1024, rounds=2),
    "H3": http_memory.Sizes(size=4 * 1024 * 1024),
}


def test_http_benchmarks_measure_every_row(tmp_path: Path) -> None:
    """H1 (SQLite) and H2 give one measured row each, H3 one for PUT and one for GET, with positive figures."""
    ctx = Context(quick=True, workdir=tmp_path, postgres_admin_url=None, s3=False, verbose=False, sizes=TINY)
    rows = run_benchmarks(ctx, list(TINY))
    assert [(row.id, row.variant, row.status in ("pass", "miss")) for row in rows] == [
        ("H1", "local+sqlite", True),
        ("H1", "local+postgres", False),  # skipped: this context has no PostgreSQL
        ("H2", "local+sqlite", True),
        ("H3", "local+sqlite", True),
        ("H3", "local+sqlite", True),
    ], [row.notes for row in rows]
    rows = [row for row in rows if row.status in ("pass", "miss")]
    for row in rows:
        assert row.subject is not None
        assert row.subject > 0
        assert row.baseline is not None
        assert row.baseline > 0
