"""Objects as files under a local directory.

A key maps to the path ``root/key``; keys are the store's fan-out paths, so a
key is never also a directory of another key. Writes go to a temporary file
in ``root/.tmp/`` named after the key they are writing, are fsynced and
renamed into place, so a reader sees the whole object or none, and a crash
leaves at most a stale temporary file that :meth:`LocalStorage.incomplete_uploads`
lists. Staged bytes (:meth:`LocalStorage.stage`) are such a temporary file,
named after the staging name and published by the same fsync and rename. A
batch's deferred writes (:meth:`LocalStorage.deferred_writes`) are renamed into
place unsynced, then fsynced together: every file, then each directory once.
Operating-system failures of the disk (full, read-only, I/O errors,
permissions) surface as :class:`~blobstore.errors.StorageUnavailable`.

Only the first write creates the root. Once the store holds the storage to its
marker (:meth:`LocalStorage.require_marker`), a root that was removed, renamed
away or unmounted is an outage: every write looks for the marker before and
after it (one ``stat`` each), so no write is acknowledged into a directory that
is not the store's, and nothing is created in its place.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import os
import re
import shutil
import stat
import tempfile
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, TypeVar

from blobstore.errors import ConfigurationError, IntegrityError, ObjectMissing, StorageUnavailable
from blobstore.storage.base import (
    CHUNK_SIZE,
    DeferredWrites,
    IncompleteUpload,
    ObjectInfo,
    ObjectStorage,
    Source,
    StagedObject,
)

_TMP = ".tmp"
#: Most bytes a read takes from the page cache on the event loop: a thread hand-off costs more than copying them.
CACHED_READ_LIMIT = 64 * 1024
#: Whether this platform can read without waiting for the disk (Linux's ``preadv2`` with ``RWF_NOWAIT``).
READS_FROM_CACHE = hasattr(os, "RWF_NOWAIT") and hasattr(os, "preadv")
#: What ``RWF_NOWAIT`` answers when the bytes are not all cached, or when the filesystem or kernel cannot tell.
_NOT_CACHED = {errno.EAGAIN, errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS}
#: Temporary files this backend writes: ``<key with / as ~>.<8 random chars>.upload``, and probes.
_UPLOAD_TEMP = re.compile(r"(?P<key>[0-9a-z._~-]+)\.[a-z0-9_]{8}\.upload")
_OTHER_TEMP = re.compile(r"(?:upload|probe)-[a-z0-9_]{8}")
#: Fsyncs of a batch's deferred writes in flight at once.
_CONCURRENT_SYNCS = 8

T = TypeVar("T")


class LocalStorage(ObjectStorage):
    """Files under ``root``; every blocking call runs in a worker thread, except a read of at most
    :data:`CACHED_READ_LIMIT` bytes the page cache holds (:func:`_read_cached`: its open and fstat run on the
    event loop, its read never waits for the disk)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.url = self.root.as_uri()
        self._tmp = self.root / _TMP
        #: The marker's key once :meth:`require_marker` was called: from then on the root is never created.
        self._marker: str | None = None

    @property
    def supports_incomplete_uploads(self) -> bool:
        """Crashed writes leave temporary files in ``.tmp/``."""
        return True

    async def check(self) -> None:
        """Prove the root writable (a probe file in ``.tmp/``), creating nothing but ``.tmp/`` in it.

        Before :meth:`require_marker` a missing root passes if its nearest existing parent is a writable
        directory (the first write creates it), and a problem raises ConfigurationError; after it, a
        missing root or marker, or any other problem, raises StorageUnavailable.
        """
        if self._marker is not None:
            with self._translated(writing=True):
                await asyncio.to_thread(self._probe)
            return
        try:
            await asyncio.to_thread(self._probe_new)
        except OSError as error:
            raise ConfigurationError(
                f"storage directory {self.root} is not usable ({error.strerror or error}); fix BLOBSTORE_STORAGE_URL"
            ) from error

    def require_marker(self, key: str) -> None:
        """From now on the root must exist and hold ``key``; writes and :meth:`check` look for it."""
        self.path(key)  # refuses an unsafe key now rather than at every write
        self._marker = key

    def ensure_location(self) -> None:
        """Raise StorageUnavailable if the marker is required and missing (one ``stat``, inline)."""
        self._require_root()

    def _probe_new(self) -> None:
        """Probe a root that is there; for a missing one, that the first write can create it."""
        if self.root.exists() or self.root.is_symlink():
            self._probe()  # a file (or a dangling link) in the way fails here
            return
        parent = next(parent for parent in self.root.parents if parent.exists())
        if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, "cannot create the directory in", str(parent))

    def _probe(self) -> None:
        self._require_root()
        self._tmp.mkdir(exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=self._tmp, prefix="probe-") as probe:
            probe.write(b"ok")
            probe.flush()

    def _require_root(self) -> None:
        """Raise StorageUnavailable if the marker is required and missing (the root gone, or not the store's)."""
        if self._marker is not None and not self.path(self._marker).is_file():
            raise StorageUnavailable(
                f"local storage {self.root} is missing or not mounted (no {self._marker} in it); "
                "it is never recreated: restore or mount it"
            )

    def path(self, key: str) -> Path:
        """Return the file of ``key``; raise ValueError for a key that could escape the root."""
        parts = key.split("/")
        if not key or "\\" in key or "\0" in key or any(part in ("", ".", "..") for part in parts) or parts[0] == _TMP:
            raise ValueError(f"unsafe storage key {key!r}")
        return self.root.joinpath(*parts)

    @contextlib.contextmanager
    def _translated(self, key: str = "", *, writing: bool = False) -> Iterator[None]:
        """Turn an operating-system failure of the disk into StorageUnavailable, keeping the cause.

        A missing file or directory passes through unchanged, unless ``writing`` and the marker is gone
        too: then the root went away under the write (a rare path, so its one ``stat`` runs inline).
        """
        try:
            yield
        except StorageUnavailable:  # a ConnectionError, so an OSError too: already translated
            raise
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError, FileExistsError):
            if writing:
                self._require_root()
            raise
        except OSError as error:
            subject = f" ({key})" if key else ""
            raise StorageUnavailable(f"local storage {self.root} failed{subject}: {error.strerror or error}") from error

    async def prepare_prefixes(self, prefixes: Sequence[str]) -> None:
        """Create the directory of each prefix (and its missing parents), then sync each parent once."""
        with self._translated(writing=True):
            await asyncio.to_thread(self._prepare_prefixes, prefixes)

    def _prepare_prefixes(self, prefixes: Sequence[str]) -> None:
        self._require_root()
        created = [new for prefix in prefixes for new in _make_dirs(self.path(prefix.rstrip("/")), self.root)]
        for parent in dict.fromkeys(new.parent for new in created):
            _fsync_dir(parent)

    async def write(self, key: str, source: Source) -> None:
        """Write to a temporary file, fsync it, rename it over ``key`` and fsync the directory."""
        target = self.path(key)
        with self._translated(key, writing=True):
            await asyncio.to_thread(self._write, key, target, source)

    def _write(self, key: str, target: Path, source: Source) -> None:
        self._require_root()
        self._publish(self._write_temp(key, source), target)

    def _publish(self, temp: Path, target: Path) -> None:
        """Rename the fsynced temporary file ``temp`` over ``target`` and make the entry durable; ``temp`` is
        gone afterwards, whatever happened."""
        try:
            _make_dirs_durably(target.parent, self.root)
            temp.replace(target)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        _fsync_dir(target.parent)
        self._confirm(target)

    def deferred_writes(self) -> DeferredWrites:
        """Writes renamed into place unsynced, then fsynced together (:class:`_DeferredFiles`)."""
        return _DeferredFiles(self)

    def _write_unsynced(self, key: str, target: Path, source: Source) -> list[Path]:
        """Write ``source`` to a temporary file and rename it over ``target``, syncing nothing; the directories
        whose new entries still need a sync (the target's, and the parent of each one it created)."""
        self._require_root()
        temp = self._write_temp(key, source, durable=False)
        try:
            created = _make_dirs(target.parent, self.root)
            temp.replace(target)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return [target.parent, *(new.parent for new in created)]

    async def write_concatenated(self, key: str, pieces: Sequence[tuple[str, int]]) -> None:
        """Copy the pieces' files into a temporary file (in the kernel where it can), then fsync and rename it
        over ``key`` as :meth:`write` does."""
        target = self.path(key)
        sources = [(self.path(source), length) for source, length in pieces]
        with self._translated(key, writing=True):
            await asyncio.to_thread(self._write_concatenated, key, target, sources)

    def _write_concatenated(self, key: str, target: Path, sources: Sequence[tuple[Path, int]]) -> None:
        self._require_root()
        fd, temp = self._new_temp(key)
        try:
            with os.fdopen(fd, "wb") as out:
                for source, length in sources:
                    try:
                        with source.open("rb") as src:
                            _copy_range(src.fileno(), out.fileno(), length, source)
                    except FileNotFoundError:
                        raise ObjectMissing(f"no object {source.relative_to(self.root).as_posix()}") from None
                os.fsync(out.fileno())
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        self._publish(temp, target)

    @property
    def supports_staging(self) -> bool:
        """Staged bytes go to a temporary file in ``.tmp/``; publishing them is a rename."""
        return True

    async def stage(self, name: str) -> StagedObject:
        """A temporary file in ``.tmp/`` named after ``name``, as a write's is (so a leftover is reported
        by :meth:`incomplete_uploads` with ``name`` as its key)."""
        self.path(name)  # refuses an unsafe name
        with self._translated(name, writing=True):
            file, temp = await asyncio.to_thread(self._open_staging, name)
        return _StagedFile(self, file, temp)

    def _open_staging(self, name: str) -> tuple[BinaryIO, Path]:
        self._require_root()
        fd, temp = self._new_temp(name)
        return os.fdopen(fd, "wb"), temp

    async def write_if_absent(self, key: str, data: bytes) -> bool:
        """Write a temporary file, then hard-link it to ``key``: the link fails if ``key`` exists."""
        target = self.path(key)
        with self._translated(key, writing=True):
            return await asyncio.to_thread(self._write_if_absent, key, target, data)

    def _write_if_absent(self, key: str, target: Path, data: bytes) -> bool:
        self._require_root()
        temp = self._write_temp(key, data)
        try:
            _make_dirs_durably(target.parent, self.root)
            try:
                os.link(temp, target)
            except FileExistsError:
                return False
            _fsync_dir(target.parent)
        finally:
            temp.unlink(missing_ok=True)
        self._confirm(target)
        return True

    def _confirm(self, target: Path) -> None:
        """After publishing ``target``: if the root went away since the first look, the file may have
        landed elsewhere; take it back and raise StorageUnavailable, so no such write is acknowledged."""
        try:
            self._require_root()
        except StorageUnavailable:
            target.unlink(missing_ok=True)
            raise

    def _new_temp(self, key: str) -> tuple[int, Path]:
        """A new empty temporary file in ``.tmp/`` named after ``key``, open for writing; the root is
        created here, by the first write, and never once the marker is required."""
        prefix = key.replace("/", "~") + "."
        try:
            fd, temp_name = tempfile.mkstemp(dir=self._tmp, prefix=prefix, suffix=".upload")
        except FileNotFoundError:  # the first write (or a root gone: the mkdir fails too)
            self._tmp.mkdir(parents=self._marker is None, exist_ok=True)
            fd, temp_name = tempfile.mkstemp(dir=self._tmp, prefix=prefix, suffix=".upload")
        return fd, Path(temp_name)

    def _write_temp(self, key: str, source: Source, *, durable: bool = True) -> Path:
        """A temporary file in ``.tmp/`` holding ``source``, named after ``key``; fsynced if ``durable``."""
        fd, temp = self._new_temp(key)
        try:
            with os.fdopen(fd, "wb") as out:
                if isinstance(source, bytes):
                    out.write(source)
                else:
                    with source.open("rb") as src:
                        shutil.copyfileobj(src, out, CHUNK_SIZE)
                out.flush()
                if durable:
                    os.fsync(out.fileno())
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return temp

    async def read(self, key: str, byte_range: tuple[int, int] | None = None) -> AsyncGenerator[bytes, None]:
        """Stream the file in chunks of at most CHUNK_SIZE; ObjectMissing if it does not exist.

        Opening comes with the first chunk, and closing with the last, so a file
        of one chunk takes one thread hand-off. A read of at most
        :data:`CACHED_READ_LIMIT` bytes whose bytes the page cache holds takes
        none: it runs on the event loop, where only its ``open`` can wait for the
        disk (a path the kernel has not cached), never its read (:func:`_read_cached`).
        """
        first, remaining = (0, None) if byte_range is None else (byte_range[0], byte_range[1] - byte_range[0] + 1)
        path = self.path(key)
        try:
            with self._translated(key):
                whole = _read_cached(path, first, remaining) if READS_FROM_CACHE else None
                if whole is None:
                    file, chunk = await asyncio.to_thread(_open_and_read, path, first, remaining)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as error:
            await asyncio.to_thread(self._require_root)  # a vanished root is an outage, not a lost object
            raise ObjectMissing(key) from error
        if whole is not None:
            if whole:
                yield whole
            return
        try:
            while chunk:
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk
                if file.closed:
                    break
                chunk = await asyncio.to_thread(_read_chunk, file, remaining)
        finally:
            if not file.closed:
                await asyncio.to_thread(file.close)

    async def stat(self, key: str) -> ObjectInfo | None:
        """Return size and mtime of the file, or None if there is none."""
        try:
            with self._translated(key):
                result = await asyncio.to_thread(self.path(key).stat)
        except (FileNotFoundError, NotADirectoryError):
            await asyncio.to_thread(self._require_root)
            return None
        if not stat.S_ISREG(result.st_mode):
            return None
        return _info(key, result)

    async def set_storage_class(self, key: str, storage_class: str) -> None:
        """A directory has no storage classes: nothing moves (the catalog records the class)."""

    async def delete_many(self, keys: Sequence[str]) -> None:
        """Unlink every file; missing files are ignored. Emptied directories stay."""
        paths = [self.path(key) for key in keys]
        with self._translated():
            await asyncio.to_thread(self._delete_all, paths)

    def _delete_all(self, paths: Sequence[Path]) -> None:
        """Unlink ``paths`` in one thread hand-off (a cancelled caller still gets them all deleted)."""
        self._require_root()
        _unlink_all(paths)

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        """Walk only the directories that can hold keys under ``prefix``, skipping ``.tmp/``.

        Siblings are visited in the order of the keys they start (a directory ``a`` as ``a/``), so
        keys come out in code-point order; one directory's entries are held at a time per level.
        """
        await asyncio.to_thread(self._require_root)  # a vanished root would list as empty
        directory = prefix.rpartition("/")[0]
        pending: list[tuple[str, os.stat_result | None]] = [(directory, None)]
        while pending:
            key, result = pending.pop()
            if result is not None and stat.S_ISREG(result.st_mode):
                yield _info(key, result)
                continue
            with self._translated():
                entries = await asyncio.to_thread(_scan, self.root / key if key else self.root, key)
            wanted = [
                (child, found)
                for child, found in entries
                if (stat.S_ISREG(found.st_mode) and child.startswith(prefix))
                or (stat.S_ISDIR(found.st_mode) and child != _TMP and _may_hold(child + "/", prefix))
            ]
            wanted.sort(key=lambda entry: entry[0] + ("/" if stat.S_ISDIR(entry[1].st_mode) else ""), reverse=True)
            pending += wanted

    async def incomplete_uploads(self) -> AsyncIterator[IncompleteUpload]:
        """Yield this backend's temporary files in ``.tmp/`` (nothing else there), with the key each was
        writing when its name tells it; started = last modified."""
        with self._translated():
            await asyncio.to_thread(self._require_root)
            entries = await asyncio.to_thread(_scan, self._tmp, "")
        for name, result in entries:
            if not stat.S_ISREG(result.st_mode):
                continue
            started = datetime.fromtimestamp(result.st_mtime, UTC)
            if match := _UPLOAD_TEMP.fullmatch(name):
                yield IncompleteUpload(match["key"].replace("~", "/"), started, name)
            elif _OTHER_TEMP.fullmatch(name):
                yield IncompleteUpload(None, started, name)

    async def abort_upload(self, upload: IncompleteUpload) -> None:
        """Remove the temporary file."""
        if "/" in upload.handle or upload.handle in ("", ".", ".."):
            raise ValueError(f"not a temporary file of this storage: {upload.handle!r}")
        with self._translated():
            await asyncio.to_thread((self._tmp / upload.handle).unlink, missing_ok=True)

    async def missing_location(self) -> str | None:
        """``the directory ROOT does not exist`` when it does not."""
        exists = await asyncio.to_thread(self.root.exists)
        return None if exists else f"the directory {self.root} does not exist"

    async def enclosing_object(self, name: str) -> str | None:
        """The nearest parent directory of the root holding a file called ``name``."""
        for parent in self.root.parents:
            if await asyncio.to_thread((parent / name).is_file):
                return parent.as_uri()
        return None


class _StagedFile(StagedObject):
    """Staged bytes in a temporary file of a :class:`LocalStorage`; publishing fsyncs and renames it."""

    def __init__(self, storage: LocalStorage, file: BinaryIO, temp: Path) -> None:
        self._storage = storage
        self._file = file
        self._temp = temp
        self._spent = False

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data`` to the temporary file."""
        with self._storage._translated(writing=True):
            await asyncio.to_thread(self._file.write, data)

    async def publish(self, key: str) -> None:
        """Fsync the temporary file and rename it over ``key`` (as :meth:`LocalStorage.write` does)."""
        target = self._storage.path(key)
        if self._spent:
            raise StorageUnavailable(f"the staged bytes for {key} were published or discarded already")
        self._spent = True
        with self._storage._translated(key, writing=True):
            await asyncio.to_thread(self._publish, target)

    def _publish(self, target: Path) -> None:
        try:
            with self._file:
                self._storage._require_root()
                self._file.flush()
                os.fsync(self._file.fileno())
        except BaseException:
            self._temp.unlink(missing_ok=True)
            raise
        try:
            self._storage._publish(self._temp, target)
        except FileNotFoundError:
            if self._temp.parent.is_dir():  # the staging file went, not the storage
                raise StorageUnavailable(
                    f"the staged bytes for {target.name} were removed before they were published (GC reclaims "
                    "the staging file of an upload that stalled past its lease); nothing was stored"
                ) from None
            raise

    async def discard(self) -> None:
        """Close and remove the temporary file, unless it was published."""
        if self._spent:
            return
        self._spent = True
        with self._storage._translated():
            await asyncio.to_thread(self._remove)

    def _remove(self) -> None:
        self._file.close()
        self._temp.unlink(missing_ok=True)


class _DeferredFiles(DeferredWrites):
    """Writes of a :class:`LocalStorage` made durable together: each is renamed into place unsynced, then
    :meth:`make_durable` fsyncs every file (a few at a time, so the filesystem can share its journal commits
    between them), then each distinct directory that gained an entry once."""

    def __init__(self, storage: LocalStorage) -> None:
        super().__init__(storage)
        self._local = storage
        #: Per key written: its file, and the directories whose new entries it needs synced.
        self._written: dict[str, tuple[Path, list[Path]]] = {}

    async def write(self, key: str, source: Source) -> None:
        """Write ``key`` (renamed into place, not yet synced)."""
        target = self._local.path(key)
        with self._local._translated(key, writing=True):
            directories = await asyncio.to_thread(self._local._write_unsynced, key, target, source)
        self._written[key] = (target, directories)

    async def make_durable(self) -> dict[str, StorageUnavailable]:
        """Fsync every file, then every directory once; a key fails if its file's or one of its directories'
        sync failed, or if the root went away meanwhile (its file is then removed, as a write's would be).
        One worker thread hop for the lot: the syncs themselves run a few at a time in threads of their own."""
        written, self._written = self._written, {}
        return await asyncio.to_thread(self._make_durable, written)

    def _make_durable(self, written: dict[str, tuple[Path, list[Path]]]) -> dict[str, StorageUnavailable]:
        failed = self._each(list(written), lambda key: _fsync_file(written[key][0]))
        directories = {directory for key, (_, needed) in written.items() if key not in failed for directory in needed}
        failed_directories = self._each(sorted(directories), _fsync_dir)
        for key, (_, needed) in written.items():
            broken = next((failed_directories[str(d)] for d in needed if str(d) in failed_directories), None)
            if broken is not None and key not in failed:
                failed[key] = broken
        try:  # as a write's _confirm: a root that went away meanwhile may have taken the files elsewhere
            self._local._require_root()
        except StorageUnavailable as error:
            _unlink_all([target for target, _ in written.values()])
            return dict.fromkeys(written, error)
        return failed

    def _each(self, items: Sequence[T], sync: Callable[[T], None]) -> dict[str, StorageUnavailable]:
        """Run ``sync`` on every item, :data:`_CONCURRENT_SYNCS` threads at once; per item (as text) that
        failed, its error."""

        def one(item: T) -> StorageUnavailable | None:
            try:
                with self._local._translated(str(item), writing=True):
                    sync(item)
            except StorageUnavailable as error:
                return error
            except FileNotFoundError:
                return StorageUnavailable(f"local storage {self._local.root}: {item} vanished before it was synced")
            return None

        if not items:
            return {}
        errors = list(_sync_threads(os.getpid()).map(one, items))
        return {str(item): error for item, error in zip(items, errors, strict=True) if error is not None}


@functools.cache
def _sync_threads(pid: int) -> ThreadPoolExecutor:
    """The threads that run a batch's syncs side by side (:data:`_CONCURRENT_SYNCS` at most, shared by every batch
    of the process): made on first use and kept, since making threads per batch cost more than the syncs of
    a small one. Keyed by process id, so a forked child, which has none of its parent's threads, makes its own."""
    return ThreadPoolExecutor(_CONCURRENT_SYNCS, thread_name_prefix=f"blobstore-sync-{pid}")


def _read_cached(path: Path, first: int, remaining: int | None) -> bytes | None:
    """All ``remaining`` bytes of ``path`` from ``first`` (or all to its end; fewer if it ends sooner), if they
    are at most :data:`CACHED_READ_LIMIT` and the page cache holds every one of them; None if reading them
    could wait for the disk (``preadv2`` with ``RWF_NOWAIT``: EAGAIN, or a short read) or the filesystem
    cannot tell. The file is closed either way."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        wanted = max(os.fstat(fd).st_size - first, 0)
        if remaining is not None:
            wanted = min(wanted, remaining)
        if wanted > CACHED_READ_LIMIT:
            return None
        buffer = bytearray(wanted)
        try:
            read = os.preadv(fd, [buffer], first, os.RWF_NOWAIT) if wanted else 0
        except OSError as error:
            if error.errno in _NOT_CACHED:
                return None
            raise
        return bytes(buffer) if read == wanted else None
    finally:
        os.close(fd)


def _open_and_read(path: Path, first: int, remaining: int | None) -> tuple[BinaryIO, bytes]:
    """Open ``path``, seek to ``first`` and read the first chunk (closing the file if that was all)."""
    file = path.open("rb")
    try:
        if first:
            file.seek(first)
        return file, _read_chunk(file, remaining)
    except BaseException:
        file.close()
        raise


def _read_chunk(file: BinaryIO, remaining: int | None) -> bytes:
    """The next chunk of at most CHUNK_SIZE (and ``remaining``) bytes; the file is closed once it has no more."""
    wanted = CHUNK_SIZE if remaining is None else min(CHUNK_SIZE, remaining)
    chunk = file.read(wanted)
    if len(chunk) < wanted or len(chunk) == remaining:  # end of file, or of the range
        file.close()
    return chunk


def _copy_range(source: int, target: int, length: int, name: Path) -> None:
    """Append the first ``length`` bytes of file ``source`` to file ``target`` (both positioned at their start
    and end), in the kernel where it can; IntegrityError if ``source`` is shorter."""
    copied = 0
    with contextlib.suppress(OSError):  # another filesystem or an old kernel: copied through user space below
        while copied < length and (step := os.copy_file_range(source, target, length - copied)):
            copied += step
    os.lseek(source, copied, os.SEEK_SET)
    while copied < length and (piece := os.read(source, min(CHUNK_SIZE, length - copied))):
        written = 0
        while written < len(piece):
            written += os.write(target, piece[written:])
        copied += len(piece)
    if copied != length:
        raise IntegrityError(f"{name} holds {copied} of its {length} bytes")


def _info(key: str, result: os.stat_result) -> ObjectInfo:
    return ObjectInfo(key, result.st_size, datetime.fromtimestamp(result.st_mtime, UTC))


def _may_hold(directory: str, prefix: str) -> bool:
    """True if keys under ``directory`` (ending in ``/``) can start with ``prefix``."""
    return directory.startswith(prefix) or prefix.startswith(directory)


def _scan(directory: Path, dir_key: str) -> list[tuple[str, os.stat_result]]:
    """Return ``(key, stat)`` of each entry in ``directory``, leaving out entries that vanish meanwhile."""
    found = []
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                try:
                    result = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                found.append((f"{dir_key}/{entry.name}" if dir_key else entry.name, result))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return found


def _unlink_all(paths: Sequence[Path]) -> None:
    for path in paths:
        try:
            path.unlink(missing_ok=True)
        except NotADirectoryError:
            continue


def _make_dirs_durably(directory: Path, root: Path) -> None:
    """Create ``directory`` and its missing parents below ``root``, fsyncing each parent so the new entries
    persist. Never ``root`` itself: without it, this raises FileNotFoundError."""
    for new in _make_dirs(directory, root):
        _fsync_dir(new.parent)


def _make_dirs(directory: Path, root: Path) -> list[Path]:
    """Create ``directory`` and its missing parents below ``root`` (never ``root`` itself: without it, this
    raises FileNotFoundError), syncing nothing; the directories that were missing, outermost first."""
    missing = []
    while directory != root and not directory.is_dir():
        missing.append(directory)
        directory = directory.parent
    for new in reversed(missing):
        new.mkdir(exist_ok=True)
    return missing[::-1]


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
