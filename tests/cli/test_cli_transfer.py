"""``blobstore import`` and ``blobstore export`` from the command line, and an import killed mid-way then resumed."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import aioboto3
import blake3
import pytest
from aiobotocore.config import AioConfig

from blobstore import BlobStore
from blobstore.store import MAX_BATCH
from blobstore.transfer import plan_export
from tests.support.cli_helpers import Run, finish, invoke, new_store, spawn
from tests.support.s3_server import S3Endpoint, temporary_bucket
from tests.support.stores import FakeClock
from tests.support.workers import check_invariants, worker_env

GRACE = 3600.0


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """The home of a new, empty embedded store."""
    return new_store(tmp_path / "home")


@pytest.fixture
def bs(home: Path) -> Callable[..., Run]:
    """Run ``blobstore ARGS`` in-process against the embedded default store in ``home``."""

    def run(*args: str) -> Run:
        return invoke(args, home=home)

    return run


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A small source: two copies of one file, a nested one, an empty one."""
    root = tmp_path / "tree"
    (root / "a" / "b").mkdir(parents=True)
    (root / "one.txt").write_bytes(b"same bytes\n")
    (root / "a" / "two.txt").write_bytes(b"same bytes\n")
    (root / "a" / "b" / "three.csv").write_bytes(b"x,y\n1,2\n")
    (root / "empty").write_bytes(b"")
    return root


def test_dry_run_reports_figures_as_json_and_stores_nothing(bs: Callable[..., Run], tree: Path) -> None:
    """--dry-run --json: files, logical and unique bytes, what would be stored, costs, duplicate groups."""
    report = json.loads(bs("import", "acme", str(tree), "--dry-run", "--json", "--pricing", "wasabi").ok().stdout)
    assert report["files"] == 4
    assert report["logical_bytes"] == 11 + 11 + 8
    assert report["unique_bytes"] == report["new_bytes"] == 11 + 8
    assert report["pricing"]["name"] == "wasabi"
    assert [group["paths"] for group in report["duplicate_groups"]] == [["a/two.txt", "one.txt"]]
    assert float(report["cost_after"]) < float(report["cost_before"])
    assert (report["compression_sample_files"], report["compression_estimate"]) == (2, "estimated from 2 sampled files")
    assert report["estimated_stored_bytes"] == 11 + 8  # under 4 KiB: stored raw
    assert bs("ls", "acme").ok().stdout == ""


def test_dry_run_prints_a_table_or_an_html_page(bs: Callable[..., Run], tree: Path) -> None:
    """The human table names every figure; --format html is one self-contained page."""
    table = bs("import", "acme", str(tree), "--dry-run").ok().stdout
    for figure in ("logical", "unique in source", "would be stored", "cost before", "cost after", "a/two.txt"):
        assert figure in table
    assert "compressed (estimate)" in table
    assert "estimated from 2 files sampled" in table
    page = bs("import", "acme", str(tree), "--dry-run", "--format", "html").ok().stdout
    assert page.startswith("<!DOCTYPE html>")
    assert "a/two.txt" in page
    assert "<script" not in page


def test_import_then_export_round_trips(bs: Callable[..., Run], tree: Path, tmp_path: Path) -> None:
    """import stores every file under the prefix; export writes them back; a rerun of each skips everything."""
    first = bs("import", "acme", str(tree), "--prefix", "t/").ok().stdout
    assert first.startswith("imported 4 files")
    again = json.loads(bs("import", "acme", str(tree), "--prefix", "t/", "--json").ok().stdout)
    assert (again["imported"], again["skipped"], again["failed"]) == (0, 4, 0)
    assert bs("ls", "acme").ok().stdout.count("t/") == 4

    dest = tmp_path / "out"
    assert bs("export", "acme", str(dest), "--prefix", "t/").ok().stdout.startswith("exported 4 files")
    exported = json.loads(bs("export", "acme", str(dest), "--prefix", "t/", "--json").ok().stdout)
    assert (exported["written"], exported["skipped"]) == (0, 4)
    for path in tree.rglob("*"):
        if path.is_file():
            assert (dest / path.relative_to(tree)).read_bytes() == path.read_bytes()


def test_import_lists_failures_and_exits_1(bs: Callable[..., Run], tree: Path) -> None:
    """A name that cannot be a key is listed with its reason; the rest is imported; exit 1 with one error line."""
    (tree / "bad\x7fname").write_bytes(b"x")
    result = bs("import", "acme", str(tree)).failed("1 file could not be imported")
    assert "failed bad\\x7fname: cannot be a key" in result.stdout
    assert bs("ls", "acme").ok().stdout.count("\n") == 4


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (["import", "acme", "{missing}"], "no such directory", 1),
        (["import", "acme", "{tree}", "--format", "html"], "--dry-run", 2),
        (["import", "acme", "{tree}", "--jobs", "0"], "--jobs", 2),
        (["import", "acme", "{tree}", "--source-profile", "p"], "s3:// sources only", 1),
        (["import", "acme", "s3://some-bucket", "--source-profile", "no-such-profile"], "no-such-profile", 1),
        (["import", "BAD!", "{tree}"], "invalid tenant", 1),
        (["import", "acme", "s3://b", "--source-endpoint-url", "ftp://x"], "--source-endpoint-url", 1),
    ],
)
def test_bad_arguments_get_one_line(
    bs: Callable[..., Run], tree: Path, tmp_path: Path, args: list[str], message: str, code: int
) -> None:
    """Each mistake is one line on stderr with the right exit status; nothing is stored."""
    values = {"tree": str(tree), "missing": str(tmp_path / "missing")}
    bs(*(arg.format(**values) for arg in args)).failed(message, code=code)
    assert bs("ls", "acme").ok().stdout == ""


def test_export_refusing_a_symbolic_link_exits_1(bs: Callable[..., Run], tree: Path, tmp_path: Path) -> None:
    """A folder of DEST that is a symbolic link is not written through; the failure is listed."""
    bs("import", "acme", str(tree)).ok()
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "a").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    result = bs("export", "acme", str(dest)).failed("2 files could not be exported")
    assert "failed a/two.txt:" in result.stdout
    assert "symbolic link" in result.stdout
    assert not (tmp_path / "elsewhere").exists()


def test_import_progress_shows_speed_and_time_left_on_a_terminal(home: Path, tree: Path) -> None:
    """With stderr a terminal, import draws a bar with files done; stdout stays pure JSON."""
    controller, terminal = pty.openpty()
    try:
        process = spawn(["import", "acme", str(tree), "--json"], home=home, stderr=terminal)
        os.close(terminal)
        result = finish(process)
        drawn = b""
        while chunk := _read_pty(controller):
            drawn += chunk
    finally:
        os.close(controller)
    assert result.code == 0
    assert json.loads(result.stdout)["imported"] == 4
    assert b"files" in drawn


def _read_pty(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # EIO: the other side is closed
        return b""


async def test_an_import_killed_mid_way_resumes_and_stores_nothing_twice(
    store: BlobStore, tmp_path: Path, clock: FakeClock
) -> None:
    """SIGKILL a real ``blobstore import`` mid-way; the rerun ends with exactly the source, each blob stored once."""
    root = tmp_path / "source"
    root.mkdir()
    files: dict[str, bytes] = {}
    for index in range(400):
        data = os.urandom(64 * 1024) if index % 4 else files.get(f"f{index - 4:03}.bin", os.urandom(64 * 1024))
        files[f"f{index:03}.bin"] = data
        (root / f"f{index:03}.bin").write_bytes(data)
    command = [sys.executable, "-m", "blobstore", "import", "acme", str(root), "--jobs", "2"]
    env = worker_env(store)
    quiet = asyncio.subprocess.DEVNULL
    process = await asyncio.create_subprocess_exec(*command, env=env, stdout=quiet, stderr=quiet)
    tenant = store.tenant("acme")
    try:
        deadline = time.monotonic() + 60
        while len((await tenant.list(limit=50)).items) < 30:
            assert process.returncode is None, "the import finished before it could be interrupted"
            assert time.monotonic() < deadline, "the import made no progress"
            await asyncio.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        await asyncio.wait_for(process.wait(), 30)
    assert process.returncode == -signal.SIGKILL
    imported_before = len(await plan_export(tenant))
    assert 30 <= imported_before < len(files)

    pipe = asyncio.subprocess.PIPE
    rerun = await asyncio.create_subprocess_exec(*command, "--json", env=env, stdout=pipe, stderr=pipe)
    stdout, stderr = await asyncio.wait_for(rerun.communicate(), 300)
    assert rerun.returncode == 0, stderr
    summary = json.loads(stdout)
    assert summary["skipped"] == imported_before
    assert summary["imported"] + summary["skipped"] == len(files)
    assert {info.key: info.digest for info in await plan_export(tenant)} == {
        name: _digest(data) for name, data in files.items()
    }
    report = await store.report()
    assert report.total.physical_bytes == sum(len(data) for data in set(files.values()))
    clock.advance(GRACE + 600)  # past the grace period and any upload lease the killed process held
    await store.gc()
    await check_invariants(store)


def _digest(data: bytes) -> str:
    return str(blake3.blake3(data).hexdigest())


async def test_import_from_a_bucket_with_an_endpoint_url(home: Path, s3: S3Endpoint) -> None:
    """``s3://bucket/prefix`` with --source-endpoint-url: a dry run, then the import, from another bucket."""
    config = AioConfig(s3={"addressing_style": "path"})
    async with (
        temporary_bucket(s3) as bucket,
        aioboto3.Session().client("s3", endpoint_url=s3.url, region_name=s3.region, config=config) as client,
    ):
        for key, body in [("in/x.txt", b"x"), ("in/sub/y.txt", b"x"), ("out.txt", b"no")]:
            await client.put_object(Bucket=bucket, Key=key, Body=body)
        args = ["import", "acme", f"s3://{bucket}/in", "--source-endpoint-url", s3.url, "--json"]
        planned = await asyncio.to_thread(invoke, [*args, "--dry-run"], home=home)
        imported = await asyncio.to_thread(invoke, args, home=home)
    report = json.loads(planned.ok().stdout)
    assert (report["files"], report["logical_bytes"], report["new_bytes"]) == (2, 2, 1)
    assert json.loads(imported.ok().stdout)["imported"] == 2
    listed = (await asyncio.to_thread(invoke, ["ls", "acme"], home=home)).ok().stdout
    assert [line.split()[-1] for line in listed.splitlines()] == ["sub/y.txt", "x.txt"]


async def test_a_missing_source_bucket_is_one_line_naming_the_source(home: Path, s3: S3Endpoint) -> None:
    """A source bucket that does not exist: one line naming the source, exit 1, nothing stored."""
    args = ["import", "acme", "s3://no-such-bucket-here/x", "--source-endpoint-url", s3.url]
    result = await asyncio.to_thread(invoke, args, home=home)
    result.failed("cannot read the source s3://no-such-bucket-here/x")


def test_ctrl_c_stops_an_import_with_exit_130_and_a_rerun_finishes_it(home: Path, tmp_path: Path) -> None:
    """SIGINT mid-import: one line, exit 130; the rerun skips what was stored and imports the rest.

    With one job an import stores its files in batches of at most ``MAX_BATCH``; 4,000 files make four, so
    the signal, sent once the first batch is listed, lands while three are still to come however loaded the
    machine."""
    root = tmp_path / "source"
    root.mkdir()
    files = 4 * MAX_BATCH
    for index in range(files):
        (root / f"f{index:04}.bin").write_bytes(os.urandom(1024))
    process = spawn(["import", "acme", str(root), "--jobs", "1"], home=home)
    deadline = time.monotonic() + 60
    while invoke(["ls", "acme", "--limit", "20"], home=home).stdout.count("\n") < 20:
        assert process.poll() is None, "the import finished before it could be interrupted"
        assert time.monotonic() < deadline, "the import made no progress"
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    finish(process).failed("interrupted", code=130)
    stored = invoke(["ls", "acme"], home=home).ok().stdout.count("\n")
    assert 20 <= stored < files
    rerun = json.loads(invoke(["import", "acme", str(root), "--json"], home=home).ok().stdout)
    assert (rerun["skipped"], rerun["imported"]) == (stored, files - stored)


def test_the_store_s_own_folder_inside_the_source_is_not_imported(tmp_path: Path) -> None:
    """``blobstore import acme .`` with the store's home under ``.`` leaves the home out."""
    (tmp_path / "data.txt").write_bytes(b"data")
    home = tmp_path / ".blobstore"
    invoke(["import", "acme", str(tmp_path)], home=home).ok()
    listed = invoke(["ls", "acme"], home=home).ok().stdout
    assert [line.split()[-1] for line in listed.splitlines()] == ["data.txt"]
