"""Import and export through the library, on every deployment: round trips, dry-run figures, resuming.

The tree has nested folders, duplicate files, unicode names, empty files and a
100 MiB file; an import followed by an export must give it back byte for byte
and name for name, and the dry run must predict exactly the bytes the import stores.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import aioboto3
import blake3
import pytest
from aiobotocore.config import AioConfig

from blobstore import BlobStore, StorageUnavailable
from blobstore.testing.faults import Fault, FaultyStorage
from blobstore.transfer import (
    DirectorySource,
    SourceFile,
    dry_run,
    export_tree,
    import_source,
    open_source,
    plan_export,
    plan_import,
)
from blobstore.transfer.sources import READ_WHOLE
from tests.support.s3_server import S3Endpoint, temporary_bucket
from tests.support.stores import FakeClock
from tests.support.workers import check_invariants, scalar

MiB = 1024 * 1024
GRACE = 3600.0


def write_tree(root: Path, *, big: int = 100 * MiB) -> dict[str, bytes]:
    """A source tree (nested, duplicated, unicode, empty, one ``big`` file); returns path -> bytes."""
    shared = os.urandom(300_000)
    files = {
        "readme.txt": b"hello\n",
        "docs/readme copy.txt": b"hello\n",
        "docs/deep/er/still/file.bin": os.urandom(70_000),
        "photos/été/plage.jpg": shared,
        "photos/été/plage (1).jpg": shared,
        "photos/日本/東京.jpg": shared,
        "photos/emoji 🎉.png": os.urandom(5000),
        "empty": b"",
        "nested/empty too": b"",
        "big/video.mp4": os.urandom(MiB) * (big // MiB) + os.urandom(big % MiB),
    }
    for relative, data in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (root / "empty folder").mkdir()
    return files


def read_tree(root: Path) -> dict[str, bytes]:
    """Every regular file under ``root`` by its relative path, with its bytes."""
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in root.rglob("*") if path.is_file()}


def unique_bytes(files: dict[str, bytes]) -> int:
    return sum(len(data) for data in set(files.values()))


async def physical_bytes(store: BlobStore) -> int:
    return (await store.report()).total.physical_bytes


async def test_round_trip_keeps_every_byte_and_name_and_the_dry_run_predicts_what_is_stored(
    store: BlobStore, tmp_path: Path
) -> None:
    """import -> export gives the identical tree; the dry run's bytes-to-store equal what the import stored."""
    source_root = tmp_path / "source"
    files = write_tree(source_root)
    tenant = store.tenant("acme")
    await tenant.put("elsewhere/readme", b"hello\n")  # already in the store: the dry run must count it as held
    before = await physical_bytes(store)
    async with open_source(str(source_root)) as source:
        plan = await plan_import(source, prefix="tree/")
        report = await dry_run(store, "acme", source, plan, jobs=3)
        assert await physical_bytes(store) == before, "a dry run stores nothing"
        result = await import_source(tenant, source, plan, jobs=3)

    assert (report.files, report.logical_bytes) == (len(files), sum(map(len, files.values())))
    assert report.unique_bytes == unique_bytes(files)
    assert report.held_bytes == len(b"hello\n")
    assert await physical_bytes(store) - before == report.new_bytes
    assert report.duplicate_groups[0].count == 3  # the shared photo
    assert report.duplicate_groups[0].paths == sorted(
        path for path in files if path.startswith("photos/") and "jpg" in path
    )
    assert report.failures == []
    assert result.failures == []
    assert (result.imported, result.skipped) == (len(files), 0)

    info = await tenant.stat("tree/photos/日本/東京.jpg")
    assert info.content_type == "image/jpeg"
    assert info.digest == blake3.blake3(files["photos/日本/東京.jpg"]).hexdigest()

    dest = tmp_path / "restored"
    exported = await export_tree(tenant, dest, await plan_export(tenant, "tree/"), prefix="tree/", jobs=3)
    assert exported.failures == []
    assert exported.written == len(files)
    assert read_tree(dest) == files
    assert not list(dest.rglob("*.part")), "no temporary file is left behind"


async def test_running_an_import_again_skips_everything_and_stores_nothing(store: BlobStore, tmp_path: Path) -> None:
    """A second run counts every file as skipped; a changed file is imported again, the others stay skipped."""
    files = write_tree(tmp_path / "source", big=3 * MiB)
    tenant = store.tenant("acme")
    async with open_source(str(tmp_path / "source")) as source:
        await import_source(tenant, source, await plan_import(source))
        stored = await physical_bytes(store)
        again = await import_source(tenant, source, await plan_import(source))
        assert (again.imported, again.skipped, again.skipped_bytes) == (0, len(files), sum(map(len, files.values())))
        assert await physical_bytes(store) == stored

        (tmp_path / "source" / "readme.txt").write_bytes(b"hullo\n")  # same size, new bytes
        changed = await import_source(tenant, source, await plan_import(source))
    assert (changed.imported, changed.skipped) == (1, len(files) - 1)
    assert await tenant.get("readme.txt") == b"hullo\n"


async def test_a_rerun_reads_each_small_file_once_and_hashes_only_the_large_ones_again(
    store: BlobStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Skipping compares digests: a small file's bytes, read for its batch, are hashed as they are (no second
    read); only files too large to read whole are hashed from the disk, in one call per batch."""
    files = write_tree(tmp_path / "source", big=3 * MiB)
    hashed: list[list[str]] = []
    digests = DirectorySource.digests

    async def recorded(self: DirectorySource, listed: Sequence[SourceFile]) -> list[tuple[str, int] | Exception]:
        hashed.append([file.path for file in listed])
        return await digests(self, listed)

    monkeypatch.setattr(DirectorySource, "digests", recorded)
    tenant = store.tenant("acme")
    async with open_source(str(tmp_path / "source")) as source:
        await import_source(tenant, source, await plan_import(source))
        assert hashed == [], "a first import hashes nothing itself: the store does, once"
        again = await import_source(tenant, source, await plan_import(source))
    assert (again.imported, again.skipped) == (0, len(files))
    assert hashed == [[path for path in sorted(files) if len(files[path]) > READ_WHOLE]]


async def test_an_import_interrupted_by_a_storage_outage_lists_the_failures_and_resumes(
    store: BlobStore, tmp_path: Path, clock: FakeClock
) -> None:
    """Writes fail mid-import: the files of those four blobs are reported (copy.bin fails with f03.bin when their
    one write fails); a rerun completes with the exact source, stored once."""
    files = {f"f{index:02}.bin": os.urandom(2000 + index) for index in range(12)}
    files |= {"copy.bin": files["f03.bin"]}
    root = tmp_path / "source"
    root.mkdir()
    for name, data in files.items():
        (root / name).write_bytes(data)
    storage = FaultyStorage(store.storage)
    store.core = replace(store.core, storage=storage)
    outage = storage.inject(Fault("write", error=StorageUnavailable("injected outage"), skip=3, times=4))
    tenant = store.tenant("acme")
    async with open_source(str(root)) as source:
        first = await import_source(tenant, source, await plan_import(source), jobs=2)
        assert outage.hits == 4
        failed = {failure.path for failure in first.failures}
        assert len({files[path] for path in failed}) == 4, "one failed write per blob, whichever the files"
        assert all("injected outage" in failure.reason for failure in first.failures)
        assert first.imported == len(files) - len(failed)

        second = await import_source(tenant, source, await plan_import(source), jobs=2)
    assert second.failures == []
    assert (second.imported, second.skipped) == (len(failed), len(files) - len(failed))
    stored = {info.key: await tenant.get(info.key) for info in await plan_export(tenant)}
    assert stored == files
    assert await physical_bytes(store) == unique_bytes(files)
    clock.advance(GRACE + 1)
    await store.gc()
    await check_invariants(store)


async def test_an_import_from_a_bucket_round_trips(store: BlobStore, s3: S3Endpoint, tmp_path: Path) -> None:
    """A second bucket on the S3 endpoint as the source: keys, bytes, dedup figures and resuming all hold."""
    files = {
        "a.txt": b"alpha",
        "dir/a copy.txt": b"alpha",
        "dir/sub/ünïcode.json": b'{"x": 1}',
        "empty.bin": b"",
        "large.bin": os.urandom(6 * MiB),
    }
    config = AioConfig(s3={"addressing_style": "path"})
    async with (
        temporary_bucket(s3) as bucket,
        aioboto3.Session().client("s3", endpoint_url=s3.url, region_name=s3.region, config=config) as client,
    ):
        for name, data in files.items():
            await client.put_object(Bucket=bucket, Key=f"exports/{name}", Body=data)
        await client.put_object(Bucket=bucket, Key="exports/folder-marker/", Body=b"")
        await client.put_object(Bucket=bucket, Key="elsewhere.txt", Body=b"not under the prefix")

        tenant = store.tenant("acme")
        async with open_source(f"s3://{bucket}/exports", endpoint_url=s3.url) as source:
            plan = await plan_import(source, prefix="in/")
            report = await dry_run(store, "acme", source, plan)
            result = await import_source(tenant, source, plan, jobs=2)
            again = await import_source(tenant, source, await plan_import(source, prefix="in/"))

    assert sorted(entry.key for entry in plan.entries) == sorted(f"in/{name}" for name in files)
    assert report.new_bytes == unique_bytes(files) == await physical_bytes(store)
    assert (result.imported, result.failures) == (len(files), [])
    assert (again.imported, again.skipped) == (0, len(files))
    assert {info.key: await tenant.get(info.key) for info in await plan_export(tenant)} == {
        f"in/{name}": data for name, data in files.items()
    }
    assert (await tenant.stat("in/dir/sub/ünïcode.json")).content_type == "application/json"


async def test_the_dry_run_counts_bytes_another_tenant_holds_when_dedup_is_global(
    store: BlobStore, tmp_path: Path
) -> None:
    """With global dedup an import stores nothing another tenant already holds, and the dry run says so."""
    root = tmp_path / "source"
    root.mkdir()
    (root / "one.bin").write_bytes(b"shared bytes")
    (root / "two.bin").write_bytes(b"only here")
    await store.tenant("other").put("x", b"shared bytes")
    async with open_source(str(root)) as source:
        plan = await plan_import(source)
        report = await dry_run(store, "acme", source, plan)
        before = await physical_bytes(store)
        await import_source(store.tenant("acme"), source, plan)
    assert (report.held_bytes, report.new_bytes) == (len(b"shared bytes"), len(b"only here"))
    assert await physical_bytes(store) - before == report.new_bytes
    assert report.cost_after < report.cost_before


async def test_names_that_cannot_be_keys_are_reported_not_renamed(store: BlobStore, tmp_path: Path) -> None:
    """A control character or a name that is not UTF-8 is listed with its reason; the other files import."""
    root = tmp_path / "source"
    root.mkdir()
    (root / "fine.txt").write_bytes(b"ok")
    (root / "tab\there.txt").write_bytes(b"tab")
    (root / os.fsdecode(b"latin1-\xe9.txt")).write_bytes(b"latin-1")
    tenant = store.tenant("acme")
    async with open_source(str(root)) as source:
        result = await import_source(tenant, source, await plan_import(source))
    assert [failure.path for failure in result.failures] == ["latin1-\\xe9.txt", "tab\\x09here.txt"]
    assert all("cannot be a key" in failure.reason for failure in result.failures)
    assert [info.key for info in await plan_export(tenant)] == ["fine.txt"]


async def test_include_and_exclude_globs_select_files(store: BlobStore, tmp_path: Path) -> None:
    """Globs match the relative path (``*`` crosses folders) or the file's name."""
    root = tmp_path / "source"
    for name in ["a.jpg", "b.txt", "tmp/c.jpg", "deep/er/d.jpg"]:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(name.encode())
    async with open_source(str(root)) as source:
        plan = await plan_import(source, include=["*.jpg"], exclude=["tmp/*"])
    assert [entry.key for entry in plan.entries] == ["a.jpg", "deep/er/d.jpg"]
    assert plan.excluded == 2
    assert await physical_bytes(store) == 0


async def test_export_refuses_to_write_through_symbolic_links_or_outside_dest(store: BlobStore, tmp_path: Path) -> None:
    """A folder or file in DEST that is a symbolic link is refused; nothing lands outside DEST."""
    tenant = store.tenant("acme")
    for key in ["link/escape.txt", "file-link", "ok/fine.txt"]:
        await tenant.put(key, key.encode())
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "link").symlink_to(outside, target_is_directory=True)
    (dest / "file-link").symlink_to(outside / "target")
    result = await export_tree(tenant, dest, await plan_export(tenant))
    assert sorted(failure.path for failure in result.failures) == ["file-link", "link/escape.txt"]
    assert all("symbolic link" in failure.reason for failure in result.failures)
    assert list(outside.iterdir()) == []
    assert (dest / "ok" / "fine.txt").read_bytes() == b"ok/fine.txt"


async def test_export_needs_a_prefix_that_ends_where_a_folder_does(store: BlobStore, tmp_path: Path) -> None:
    """With prefix ``p`` the key ``p/x`` would be the absolute ``/x``: it is refused, not written."""
    tenant = store.tenant("acme")
    await tenant.put("p/x", b"x")
    result = await export_tree(tenant, tmp_path / "dest", await plan_export(tenant, "p"), prefix="p")
    assert [failure.path for failure in result.failures] == ["p/x"]
    assert list((tmp_path / "dest").iterdir()) == []


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by relative path (folders only as the paths of their files)."""
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in root.rglob("*") if path.is_file()}


async def test_export_reports_keys_that_name_no_file_and_writes_nothing_outside_dest(
    store: BlobStore, tmp_path: Path
) -> None:
    """Directory markers, a leading '/', and empty, '.' or '..' segments are reported, each with its reason;
    the other keys are written, and nothing lands beside DEST."""
    tenant = store.tenant("acme")
    unsafe = ["photos/", "/lead", "a//b", "a/./b", "a/../b", ".", "..", "../escape", "x/..", "x/../../escape"]
    for key in [*unsafe, "photos/a.jpg", "b", "x/y"]:
        await tenant.put(key, key.encode())
    outer = tmp_path / "outer"
    dest = outer / "dest"
    result = await export_tree(tenant, dest, await plan_export(tenant))
    assert sorted(failure.path for failure in result.failures) == sorted(unsafe)
    assert all("names no file" in failure.reason for failure in result.failures)
    assert not any("prefix" in failure.reason for failure in result.failures)  # the prefix is not the problem
    assert _tree(dest) == {"photos/a.jpg": b"photos/a.jpg", "b": b"b", "x/y": b"x/y"}
    assert sorted(path.name for path in outer.iterdir()) == ["dest"]


async def test_export_reports_a_key_that_collides_with_a_folder(store: BlobStore, tmp_path: Path) -> None:
    """``a`` and ``a/b`` cannot both be files: one is written, the other reported (a file where a folder must be,
    or a folder where the file must be); at any number of jobs, nothing is half-written."""
    tenant = store.tenant("acme")
    for key in ["a", "a/b", "c/d", "c"]:
        await tenant.put(key, key.encode())
    for jobs in (1, 4):
        dest = tmp_path / f"dest-{jobs}"
        result = await export_tree(tenant, dest, await plan_export(tenant), jobs=jobs)
        failed = sorted(failure.path for failure in result.failures)
        written = _tree(dest)
        for pair in (["a", "a/b"], ["c", "c/d"]):
            assert [key in written for key in pair].count(True) == 1
            assert sorted(key for key in pair if key not in written) == [key for key in failed if key in pair]
        assert all(data == name.encode() for name, data in written.items())
        assert result.written == 2
        assert not any(".part" in path.name for path in dest.rglob("*"))


async def test_export_resumes_and_rewrites_a_file_that_differs(store: BlobStore, tmp_path: Path) -> None:
    """Files already there with the right digest are skipped; a damaged one is written again."""
    tenant = store.tenant("acme")
    for index in range(5):
        await tenant.put(f"k{index}", f"value {index}".encode())
    dest = tmp_path / "dest"
    await export_tree(tenant, dest, await plan_export(tenant))
    (dest / "k2").write_bytes(b"value X")  # same size, wrong bytes
    (dest / "k4").unlink()
    again = await export_tree(tenant, dest, await plan_export(tenant))
    assert (again.written, again.skipped, again.failures) == (2, 3, [])
    assert read_tree(dest) == {f"k{index}": f"value {index}".encode() for index in range(5)}


async def test_export_verifies_digests_and_leaves_nothing_when_bytes_are_damaged(
    store: BlobStore, tmp_path: Path
) -> None:
    """A stored object whose bytes no longer match its digest is reported; no file (or temporary) is left."""
    tenant = store.tenant("acme")
    await tenant.put("good", b"good bytes")
    await tenant.put("bad", b"bad bytes!")
    object_key = await scalar(
        store,
        "SELECT b.object_key FROM blobs b JOIN refs r ON r.blob_id = b.id WHERE r.key = :key",
        key="bad",
    )
    await store.storage.write(object_key, b"BAD bytes!")
    dest = tmp_path / "dest"
    result = await export_tree(tenant, dest, await plan_export(tenant))
    assert [failure.path for failure in result.failures] == ["bad"]
    assert "corrupted" in result.failures[0].reason
    assert sorted(path.name for path in dest.iterdir()) == ["good"]


@pytest.mark.parametrize("jobs", [0, 257, True])
async def test_jobs_out_of_range_are_refused(store: BlobStore, tmp_path: Path, jobs: int) -> None:
    """``jobs`` is 1..256; anything else is InvalidInput before any work."""
    async with open_source(str(tmp_path)) as source:
        plan = await plan_import(source)
        with pytest.raises(ValueError, match="jobs"):
            await import_source(store.tenant("acme"), source, plan, jobs=jobs)


async def test_dest_itself_may_be_a_symbolic_link(store: BlobStore, tmp_path: Path) -> None:
    """Only links inside DEST are refused: DEST named through a link is where the user wants the files."""
    tenant = store.tenant("acme")
    await tenant.put("a/b", b"b")
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real", target_is_directory=True)
    result = await export_tree(tenant, tmp_path / "alias", await plan_export(tenant))
    assert result.failures == []
    assert (tmp_path / "real" / "a" / "b").read_bytes() == b"b"


async def test_the_dry_run_estimates_the_compressed_size_from_a_sample(store: BlobStore, tmp_path: Path) -> None:
    """With every new file sampled (fewer than SAMPLE_FILES, none over SAMPLE_BYTES) the estimate is exactly what
    the import stores; with more files than the sample, it samples SAMPLE_FILES and stays close."""
    from blobstore.transfer.sampling import SAMPLE_FILES

    text = b"".join(b"%06d,GET,/api/items/%d,200,0.003\n" % (n, n % 97) for n in range(40_000))
    root = tmp_path / "source"
    root.mkdir()
    files = {
        "log.csv": text,
        "log copy.csv": text,
        "noise.bin": os.urandom(200_000),
        "photo.jpg": text[:100_000],  # already compressed, by its type: not attempted
        "tiny.txt": b"tiny",
    }
    for name, data in files.items():
        (root / name).write_bytes(data)
    for n in range(2 * SAMPLE_FILES):
        (root / f"many/{n:03d}.txt").parent.mkdir(exist_ok=True)
        (root / f"many/{n:03d}.txt").write_bytes(text[n * 1000 : n * 1000 + 20_000] + b"%d" % n)
    stored_sql = "SELECT COALESCE(SUM(COALESCE(stored_size, size)), 0) FROM blobs WHERE state = 'live'"

    async with open_source(str(root)) as source:
        plan = await plan_import(source, prefix="few/", exclude=("many/*",))
        report = await dry_run(store, "acme", source, plan)
        assert report.compression_sample.files == 4  # the new unique files, every one
        assert await scalar(store, stored_sql) == 0, "a dry run stores nothing"
        await import_source(store.tenant("acme"), source, plan)
    stored = int(await scalar(store, stored_sql))
    assert report.estimated_stored_bytes == stored < report.new_bytes
    as_json = report.to_dict()
    assert as_json["estimated_stored_bytes"] == stored
    assert as_json["compression_estimate"] == "estimated from 4 sampled files"

    async with open_source(str(root / "many")) as source:
        plan = await plan_import(source, prefix="many/")
        report = await dry_run(store, "acme", source, plan)
        await import_source(store.tenant("acme"), source, plan)
    assert report.compression_sample.files == SAMPLE_FILES
    added = int(await scalar(store, stored_sql)) - stored
    assert abs(report.estimated_stored_bytes - added) < 0.2 * added
