"""LocalStorage passes the conformance suite and keeps its files safe."""

from __future__ import annotations

import asyncio
import errno
import multiprocessing
import os
import shutil
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from blobstore.errors import ConfigurationError, StorageUnavailable
from blobstore.storage import LocalStorage, ObjectStorage, local, open_storage_from_url, read_all
from blobstore.testing.storage_suite import StorageConformance


class TestLocalStorage(StorageConformance):
    @pytest.fixture
    async def storage(self, tmp_path: Path) -> AsyncIterator[ObjectStorage]:
        async with LocalStorage(tmp_path / "root") as storage:
            await storage.check()
            yield storage


@pytest.mark.parametrize("key", ["/abs", "../up", "a/../../up", "a//b", "a/./b", "a/", "", "a\\b", ".tmp/x", "nul\0"])
async def test_unsafe_keys_are_rejected(tmp_path: Path, key: str) -> None:
    """Keys that are absolute, contain empty/./.. segments, backslashes or name .tmp raise ValueError."""
    storage = LocalStorage(tmp_path)
    with pytest.raises(ValueError, match="unsafe storage key"):
        await storage.write(key, b"x")
    with pytest.raises(ValueError, match="unsafe storage key"):
        await storage.stat(key)
    assert list(tmp_path.iterdir()) == []


async def test_keys_map_to_paths_under_root(tmp_path: Path) -> None:
    """A key is stored at root/key, and the URL is file:// plus the absolute root."""
    storage = LocalStorage(tmp_path)
    await storage.write("blobs/ab/cd/abcd.1", b"data")
    assert (tmp_path / "blobs/ab/cd/abcd.1").read_bytes() == b"data"
    assert storage.url == tmp_path.resolve().as_uri()


async def test_failed_write_leaves_no_temp_file(tmp_path: Path) -> None:
    """A write whose source vanished leaves neither the object nor a temporary file."""
    storage = LocalStorage(tmp_path)
    with pytest.raises(FileNotFoundError):
        await storage.write("k", tmp_path / "gone.bin")
    assert list((tmp_path / ".tmp").iterdir()) == []
    assert not (tmp_path / "k").exists()


async def test_failed_fsync_leaves_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write that fails after the temporary file was filled removes it and keeps the old object."""
    storage = LocalStorage(tmp_path)
    await storage.write("k", b"old")

    def failing_fsync(fd: int) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(StorageUnavailable, match="disk on fire"):
        await storage.write("k", b"new")
    monkeypatch.undo()
    assert list((tmp_path / ".tmp").iterdir()) == []
    assert await read_all(storage, "k") == b"old"


async def test_temp_files_are_listed_as_incomplete_uploads_with_their_keys(tmp_path: Path) -> None:
    """A crashed write's temp file is an incomplete upload naming its key; foreign files in .tmp are not listed."""
    storage = LocalStorage(tmp_path)
    await storage.write("obj", b"kept")
    crashed = tmp_path / ".tmp" / "data~ab~cd~abcd.0123.x1y2z3_w.upload"
    crashed.write_bytes(b"partial")
    old_style = tmp_path / ".tmp" / "upload-abcd1234"
    old_style.write_bytes(b"partial, written before temp names told their key")
    foreign = tmp_path / ".tmp" / "someone-elses-notes.txt"
    foreign.write_bytes(b"not ours")
    hour_ago = (datetime.now(UTC) - timedelta(hours=1)).timestamp()
    os.utime(crashed, (hour_ago, hour_ago))
    found = {upload.key: upload async for upload in storage.incomplete_uploads()}
    assert set(found) == {"data/ab/cd/abcd.0123", None}
    assert found["data/ab/cd/abcd.0123"].started < datetime.now(UTC) - timedelta(minutes=59)
    for upload in found.values():
        await storage.abort_upload(upload)
    assert not crashed.exists()
    assert not old_style.exists()
    assert foreign.read_bytes() == b"not ours"
    assert storage.supports_incomplete_uploads
    assert [info.key async for info in storage.list()] == ["obj"]


async def test_disk_failures_are_storage_unavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSPC and EROFS from the operating system reach callers as StorageUnavailable, cause kept."""
    storage = LocalStorage(tmp_path)
    for code in (errno.ENOSPC, errno.EROFS):

        def failing_fsync(fd: int, code: int = code) -> None:
            raise OSError(code, os.strerror(code))

        monkeypatch.setattr(os, "fsync", failing_fsync)
        with pytest.raises(StorageUnavailable, match=os.strerror(code)) as raised:
            await storage.write("k", b"bytes")
        assert isinstance(raised.value.__cause__, OSError)
        monkeypatch.undo()
    assert await storage.stat("k") is None
    assert list((tmp_path / ".tmp").iterdir()) == []


async def test_check_creates_nothing_and_the_first_write_creates_the_root(tmp_path: Path) -> None:
    """check passes for a missing root under a writable directory and creates nothing; the first write creates
    the root, parents included."""
    storage = LocalStorage(tmp_path / "new" / "root")
    await storage.check()
    assert list(tmp_path.iterdir()) == []
    await storage.write("a/k", b"x")
    assert (tmp_path / "new" / "root" / "a" / "k").read_bytes() == b"x"


async def test_check_rejects_a_root_that_cannot_be_created(tmp_path: Path) -> None:
    """check on a root below a file raises ConfigurationError naming BLOBSTORE_STORAGE_URL."""
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(ConfigurationError, match="BLOBSTORE_STORAGE_URL"):
        await LocalStorage(tmp_path / "file" / "root").check()


async def held_to_marker(root: Path) -> LocalStorage:
    storage = LocalStorage(root)
    await storage.write_if_absent("marker", b"store id")
    storage.require_marker("marker")
    await storage.write("kept", b"kept")
    return storage


async def test_without_its_required_marker_every_operation_is_an_outage(tmp_path: Path) -> None:
    """Once the marker is required and gone, check, writes, listings, deletes and misses raise StorageUnavailable
    (a miss is not ObjectMissing: the object may be safe in the absent directory); nothing is created."""
    storage = await held_to_marker(tmp_path / "root")
    (tmp_path / "root" / "marker").unlink()
    before = sorted(path.name for path in (tmp_path / "root").iterdir())
    calls = {
        "check": storage.check,
        "write": lambda: storage.write("new", b"x"),
        "write_if_absent": lambda: storage.write_if_absent("marker", b"another id"),
        "list": lambda: anext(aiter(storage.list())),
        "incomplete_uploads": lambda: anext(aiter(storage.incomplete_uploads()), None),
        "delete_many": lambda: storage.delete_many(["kept"]),
        "stat of a missing key": lambda: storage.stat("missing"),
        "read of a missing key": lambda: read_all(storage, "missing"),
    }
    for name, call in calls.items():
        with pytest.raises(StorageUnavailable, match="marker"):
            await call()
        assert sorted(path.name for path in (tmp_path / "root").iterdir()) == before, name
    assert await read_all(storage, "kept") == b"kept"  # what is there still reads


async def test_a_removed_root_is_not_recreated_by_writes_or_check(tmp_path: Path) -> None:
    """Once the marker is required, a removed root stays removed: check and writes raise StorageUnavailable."""
    storage = await held_to_marker(tmp_path / "root")
    shutil.rmtree(tmp_path / "root")
    for call in (storage.check, lambda: storage.write("a/b/new", b"x"), lambda: storage.write_if_absent("n", b"x")):
        with pytest.raises(StorageUnavailable):
            await call()
    assert list(tmp_path.iterdir()) == []


async def test_a_root_that_goes_during_a_write_does_not_acknowledge_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The marker vanishes after the write's first look, just as the file is published: the write raises
    StorageUnavailable and takes the file back."""
    storage = await held_to_marker(tmp_path / "root")
    fsync_dir = local._fsync_dir

    def fsync_then_unmount(directory: Path) -> None:
        fsync_dir(directory)
        (tmp_path / "root" / "marker").unlink(missing_ok=True)

    monkeypatch.setattr(local, "_fsync_dir", fsync_then_unmount)
    with pytest.raises(StorageUnavailable):
        await storage.write("late/key", b"never acknowledged")
    assert not (tmp_path / "root" / "late" / "key").exists()


async def test_check_rejects_unusable_root(tmp_path: Path) -> None:
    """check on a root that is a file raises ConfigurationError naming BLOBSTORE_STORAGE_URL."""
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(ConfigurationError, match="BLOBSTORE_STORAGE_URL"):
        await LocalStorage(tmp_path / "file").check()


async def test_early_exit_from_read_closes_the_file(tmp_path: Path) -> None:
    """Leaving a read after the first chunk closes the file (no ResourceWarning under -W error)."""
    storage = LocalStorage(tmp_path)
    await storage.write("big", os.urandom(3 * 1024 * 1024))
    stream = storage.read("big")
    assert len(await anext(stream)) > 0
    await stream.aclose()


def _counting_hand_offs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the functions handed to a worker thread from now on."""
    handed: list[str] = []
    to_thread = asyncio.to_thread

    async def counted(function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        handed.append(function.__name__)
        return await to_thread(function, *args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", counted)
    return handed


async def _read(storage: LocalStorage, key: str, byte_range: tuple[int, int] | None = None) -> bytes:
    return b"".join([chunk async for chunk in storage.read(key, byte_range)])


@pytest.mark.skipif(not local.READS_FROM_CACHE, reason="no preadv2 with RWF_NOWAIT on this platform")
async def test_small_reads_the_page_cache_holds_take_no_thread_hand_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A small object, a small range of a large one, an empty object and a range past the end of a (shrunken)
    object are read on the event loop when the page cache holds their bytes (just written, it does)."""
    storage = LocalStorage(tmp_path)
    small, big = os.urandom(4096), os.urandom(3 * 1024 * 1024)
    for key, data in (("small", small), ("big", big), ("empty", b"")):
        await storage.write(key, data)
    handed = _counting_hand_offs(monkeypatch)
    assert await _read(storage, "small") == small
    assert (
        await _read(storage, "big", (1000, 1000 + local.CACHED_READ_LIMIT - 1)) == big[1000:][: local.CACHED_READ_LIMIT]
    )
    assert await _read(storage, "empty") == b""
    assert await _read(storage, "small", (4000, 4999)) == small[4000:]
    assert await _read(storage, "small", (5000, 5999)) == b""
    assert handed == []


async def test_reads_the_page_cache_may_not_hold_whole_go_to_a_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read larger than CACHED_READ_LIMIT, and a small one whose bytes would have to come from the disk
    (preadv2 with RWF_NOWAIT: EAGAIN), are read by a worker thread, with the same bytes."""
    storage = LocalStorage(tmp_path)
    small, big = os.urandom(4096), os.urandom(3 * 1024 * 1024)
    await storage.write("small", small)
    await storage.write("big", big)
    handed = _counting_hand_offs(monkeypatch)
    assert await _read(storage, "big") == big
    assert handed[0] == "_open_and_read"
    handed.clear()

    def not_cached(*_args: Any) -> int:
        raise BlockingIOError(errno.EAGAIN, os.strerror(errno.EAGAIN))

    monkeypatch.setattr(os, "preadv", not_cached)
    assert await _read(storage, "small") == small
    assert handed == ["_open_and_read"]


def test_file_url_opens_local_storage(tmp_path: Path) -> None:
    """file:///abs/dir opens LocalStorage on that directory, and its url round-trips."""
    storage = open_storage_from_url(tmp_path.as_uri(), endpoint_url=None, region="us-east-1")
    assert isinstance(storage, LocalStorage)
    assert storage.root == tmp_path.resolve()
    assert open_storage_from_url(storage.url, endpoint_url=None, region="us-east-1").url == storage.url


@pytest.mark.parametrize("url", ["file://relative/dir", "file://", "file:relative", "/srv/blobs", "blobs"])
def test_bad_file_urls(url: str) -> None:
    """A relative, empty or scheme-less location is a ConfigurationError naming BLOBSTORE_STORAGE_URL."""
    with pytest.raises(ConfigurationError, match="BLOBSTORE_STORAGE_URL"):
        open_storage_from_url(url, endpoint_url=None, region="us-east-1")


def test_plain_path_is_not_a_url() -> None:
    """A bare path instead of a URL is rejected saying so."""
    with pytest.raises(ConfigurationError, match="BLOBSTORE_STORAGE_URL: '/srv/blobs' is not a URL"):
        open_storage_from_url("/srv/blobs", endpoint_url=None, region="us-east-1")


async def _write_batch(storage: LocalStorage, keys: list[str]) -> dict[str, StorageUnavailable]:
    batch = storage.deferred_writes()
    for key in keys:
        await batch.write(key, key.encode())
    return await batch.make_durable()


def _batch_in_forked_child(root: Path) -> None:
    """In a forked child: make a batch durable (the parent's sync threads do not exist here)."""

    async def run() -> None:
        async with LocalStorage(root) as storage:
            assert await _write_batch(storage, ["data/child/1", "data/child/2"]) == {}

    asyncio.run(run())


async def test_a_forked_child_syncs_its_batches_in_threads_of_its_own(tmp_path: Path) -> None:
    """The threads that sync a batch are kept per process: a child forked after its parent synced a batch
    (whose threads it does not inherit) syncs its own instead of waiting forever for the parent's."""
    root = tmp_path / "root"
    async with LocalStorage(root) as storage:
        await storage.check()
        assert await _write_batch(storage, ["data/parent/1", "data/parent/2"]) == {}
        child = multiprocessing.get_context("fork").Process(target=_batch_in_forked_child, args=(root,))
        child.start()
        await asyncio.to_thread(child.join, 60)
        if child.is_alive():
            child.kill()
        assert child.exitcode == 0
        assert await read_all(storage, "data/child/2") == b"data/child/2"
