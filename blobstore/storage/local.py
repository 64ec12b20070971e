"""Objects as files under a local directory.

A key maps to the path ``root/key``; keys are the store's fan-out paths, so a
key is never also a directory of another key. Writes go to a temporary file
in ``root/.tmp/``, are fsynced and renamed into place, so a reader sees the
whole object or none, and a crash leaves at most a stale temporary file that
:meth:`LocalStorage.abort_incomplete_uploads` removes.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import tempfile
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from blobstore.errors import ConfigurationError
from blobstore.storage.base import CHUNK_SIZE, ObjectInfo, ObjectMissing, ObjectStorage, Source

_TMP = ".tmp"


class LocalStorage(ObjectStorage):
    """Files under ``root``; every blocking call runs in a worker thread."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.url = self.root.as_uri()
        self._tmp = self.root / _TMP

    @property
    def supports_incomplete_uploads(self) -> bool:
        """Crashed writes leave temporary files in ``.tmp/``."""
        return True

    async def check(self) -> None:
        """Create the root if missing and prove it writable, or raise ConfigurationError."""
        try:
            await asyncio.to_thread(self._probe)
        except OSError as error:
            raise ConfigurationError(
                f"storage directory {self.root} is not usable ({error.strerror or error}); fix BLOBSTORE_STORAGE_URL"
            ) from error

    def _probe(self) -> None:
        self._tmp.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=self._tmp, prefix="probe-") as probe:
            probe.write(b"ok")
            probe.flush()

    def path(self, key: str) -> Path:
        """Return the file of ``key``; raise ValueError for a key that could escape the root."""
        parts = key.split("/")
        if not key or "\\" in key or "\0" in key or any(part in ("", ".", "..") for part in parts) or parts[0] == _TMP:
            raise ValueError(f"unsafe storage key {key!r}")
        return self.root.joinpath(*parts)

    async def write(self, key: str, source: Source) -> None:
        """Write to a temporary file, fsync it, rename it over ``key`` and fsync the directory."""
        await asyncio.to_thread(self._write, self.path(key), source)

    def _write(self, target: Path, source: Source) -> None:
        self._tmp.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(dir=self._tmp, prefix="upload-")
        temp = Path(temp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                if isinstance(source, bytes):
                    out.write(source)
                else:
                    with source.open("rb") as src:
                        shutil.copyfileobj(src, out, CHUNK_SIZE)
                out.flush()
                os.fsync(out.fileno())
            _make_dirs_durably(target.parent)
            temp.replace(target)
            _fsync_dir(target.parent)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise

    async def read(self, key: str, byte_range: tuple[int, int] | None = None) -> AsyncGenerator[bytes, None]:
        """Stream the file in chunks of at most CHUNK_SIZE; ObjectMissing if it does not exist."""
        path = self.path(key)
        try:
            file = await asyncio.to_thread(path.open, "rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as error:
            raise ObjectMissing(key) from error
        try:
            if byte_range is None:
                remaining = None
            else:
                first, last = byte_range
                await asyncio.to_thread(file.seek, first)
                remaining = last - first + 1
            while remaining is None or remaining > 0:
                chunk = await asyncio.to_thread(_read_chunk, file, remaining)
                if not chunk:
                    break
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk
        finally:
            await asyncio.to_thread(file.close)

    async def stat(self, key: str) -> ObjectInfo | None:
        """Return size and mtime of the file, or None if there is none."""
        try:
            result = await asyncio.to_thread(self.path(key).stat)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not stat.S_ISREG(result.st_mode):
            return None
        return _info(key, result)

    async def delete_many(self, keys: Sequence[str]) -> None:
        """Unlink every file; missing files are ignored. Emptied directories stay."""
        paths = [self.path(key) for key in keys]
        await asyncio.to_thread(_unlink_all, paths)

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        """Walk only the directories that can hold keys under ``prefix``, skipping ``.tmp/``."""
        directory = prefix.rpartition("/")[0]
        pending = [(self.path(directory) if directory else self.root, directory)]
        while pending:
            path, dir_key = pending.pop()
            entries = await asyncio.to_thread(_scan, path, dir_key)
            for key, result in entries:
                if stat.S_ISREG(result.st_mode) and key.startswith(prefix):
                    yield _info(key, result)
                elif stat.S_ISDIR(result.st_mode) and key != _TMP and _may_hold(key + "/", prefix):
                    pending.append((path / key.rpartition("/")[2], key))

    async def abort_incomplete_uploads(self, older_than: datetime) -> int:
        """Delete temporary files in ``.tmp/`` last modified before ``older_than``; return how many."""
        return await asyncio.to_thread(self._remove_stale, older_than.timestamp())

    def _remove_stale(self, cutoff: float) -> int:
        removed = 0
        for name, result in _scan(self._tmp, ""):
            if stat.S_ISREG(result.st_mode) and result.st_mtime < cutoff:
                (self._tmp / name).unlink(missing_ok=True)
                removed += 1
        return removed


def _read_chunk(file: BinaryIO, remaining: int | None) -> bytes:
    return file.read(CHUNK_SIZE if remaining is None else min(CHUNK_SIZE, remaining))


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


def _make_dirs_durably(directory: Path) -> None:
    """Create ``directory`` and its missing parents, fsyncing each parent so the new entries persist."""
    missing = []
    while not directory.is_dir():
        missing.append(directory)
        directory = directory.parent
    for new in reversed(missing):
        new.mkdir(exist_ok=True)
        _fsync_dir(new.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
