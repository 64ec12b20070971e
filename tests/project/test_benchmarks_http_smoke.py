"""The HTTP benchmarks (H1-H4, PEER-HTTP) run end to end at tiny sizes and report measured rows (no timings)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import http_get, http_memory, http_put, peer_http, s3_peer, s3_reads, s3_upload
from benchmarks.harness import Context
from benchmarks.http_load import Workload
from benchmarks.runner import run_benchmarks
from tests.support.servers import postgres_server

TINY = {
    "H1": http_get.Sizes(gets_per_client=2, rounds=2),
    "H2": http_put.Sizes(size=2 * 1024 * 1024, rounds=2),
    "H3": http_memory.Sizes(size=4 * 1024 * 1024),
}


def test_http_benchmarks_measure_every_row(tmp_path: Path) -> None:
    """H1 (SQLite) gives one measured row, H2 one per client (curl, httpx), H3 one for PUT and one for GET, with
    positive figures."""
    ctx = Context(quick=True, workdir=tmp_path, postgres_admin_url=None, s3=False, verbose=False, sizes=TINY)
    rows = run_benchmarks(ctx, list(TINY))
    assert [(row.id, row.variant, row.status in ("pass", "miss")) for row in rows] == [
        ("H1", "local+sqlite", True),
        ("H1", "local+postgres", False),  # skipped: this context has no PostgreSQL
        ("H2", "local+sqlite, curl", True),
        ("H2", "local+sqlite, httpx", True),
        ("H3", "local+sqlite", True),
        ("H3", "local+sqlite", True),
    ], [row.notes for row in rows]
    rows = [row for row in rows if row.status in ("pass", "miss")]
    for row in rows:
        assert row.subject is not None
        assert row.subject > 0
        assert row.baseline is not None
        assert row.baseline > 0


@pytest.mark.postgres
def test_the_load_benchmark_reports_every_operation_and_no_failures(tmp_path: Path) -> None:
    """H4 at a tiny size against PostgreSQL and S3: a row per operation with its throughput and latencies,
    judged on the run's failures (5xx, inconsistent answers, lost writes), which must be none."""
    tiny = {"H4": Workload(clients=4, seconds=4, max_ops=200)}
    with postgres_server() as admin_url:
        ctx = Context(quick=True, workdir=tmp_path, postgres_admin_url=admin_url, s3=True, verbose=False, sizes=tiny)
        rows = run_benchmarks(ctx, ["H4"])
    assert [row.what.split("s/s")[0] for row in rows] == ["PUT", "GET", "LIST", "DELETE"], [r.notes for r in rows]
    for row in rows:
        assert row.status == "pass", row.notes
        assert row.figure == 0
        assert row.subject is not None
        assert row.subject > 0
        assert "p50" in row.notes
        assert "p99" in row.notes


def test_peer_http_measures_get_and_put_or_says_what_to_install(tmp_path: Path) -> None:
    """PEER-HTTP gives a GET and a PUT row: measured, with both servers' CPU per request, when svc-infra and
    python-multipart are installed; otherwise skipped with the command that installs them."""
    tiny = {"PEER-HTTP": peer_http.Sizes(requests_per_client=2, rounds=2)}
    ctx = Context(quick=True, workdir=tmp_path, postgres_admin_url=None, s3=False, verbose=False, sizes=tiny)
    rows = run_benchmarks(ctx, ["PEER-HTTP"])
    assert [(row.id, row.variant) for row in rows] == [("PEER-HTTP", "GET"), ("PEER-HTTP", "PUT")]
    missing = peer_http.missing()
    for row in rows:
        if missing is not None:
            assert (row.status, row.notes) == ("skip", missing)
            assert "pip install --no-deps svc-infra==1.22.2 python-multipart" in row.notes
            continue
        assert row.status in ("pass", "miss"), row.notes
        assert row.subject is not None
        assert row.subject > 0
        assert row.baseline is not None
        assert row.baseline > 0
        assert "server CPU per request" in row.notes


def test_s3_benchmarks_measure_every_row(tmp_path: Path) -> None:
    """S1 gives one measured row (boto3 through the S3 API vs the native API of one server, with the server's CPU
    per request on each), S2 two (a multipart upload_file vs a native PUT, and the server's memory), S3 four
    (4 KiB and large PUT and GET, blobstore vs moto's server)."""
    tiny = {
        "S1": s3_reads.Sizes(requests_per_client=2, rounds=2),
        "S2": s3_upload.Sizes(size=12 * 1024 * 1024, rounds=2),
        "S3": s3_peer.Sizes(requests_per_client=2, rounds=2, large=1024 * 1024),
    }
    ctx = Context(quick=True, workdir=tmp_path, postgres_admin_url=None, s3=False, verbose=False, sizes=tiny)
    rows = run_benchmarks(ctx, ["S1", "S2", "S3"])
    assert [(row.id, row.variant) for row in rows] == [
        ("S1", "GET 4 KiB"),
        ("S2", "upload 12 MiB"),
        ("S2", "server RSS, 12 MiB uploads"),
        ("S3", "PUT 4 KiB"),
        ("S3", "GET 4 KiB"),
        ("S3", "PUT 1 MiB"),
        ("S3", "GET 1 MiB"),
    ], [row.notes for row in rows]
    for row in rows:
        assert row.status in ("pass", "miss"), row.notes
        assert row.subject is not None
        assert row.subject > 0
        assert row.baseline is not None
        assert row.baseline > 0
        assert row.id == "S2" or "server CPU per request" in row.notes
