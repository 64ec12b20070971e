"""Where an import reads from: a local directory or an S3 bucket (under a prefix), behind one interface.

A source lists its files once (:meth:`ImportSource.scan`), then hands each one
to ``Tenant.put`` as something it streams (:meth:`ImportSource.data`: a
:class:`~pathlib.Path` for a local file, an async iterable of chunks for an
object) and hashes it the way the store does (:meth:`ImportSource.digest`).
Nothing holds a whole large file in memory: only a small local file (at most
:data:`READ_WHOLE` bytes) is read whole, with the others of its batch in one
worker thread (:meth:`ImportSource.contents`), so that storing it costs no
thread hop, ``stat`` or second read of its own.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import io
import os
import stat
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Self, TypeVar
from urllib.parse import urlsplit

from blobstore.core.ingest import PutData, new_hasher
from blobstore.errors import BlobStoreError, ConfigurationError, InvalidInput
from blobstore.extras import needs

if TYPE_CHECKING:
    from blobstore.storage import S3Storage

T = TypeVar("T")

#: Bytes read at a time while hashing a local file: large enough for BLAKE3 to use several threads.
_HASH_BUFFER = 4 * 1024 * 1024
#: A local file of at most this many bytes is handed to the put as its bytes, read with its batch's others.
READ_WHOLE = 256 * 1024


@dataclass(frozen=True)
class SourceFile:
    """One file of a source: its ``/``-separated path relative to the source's root, and its size when listed."""

    path: str
    size: int


@dataclass(frozen=True)
class Failure:
    """A file (or folder) that could not be imported or exported, and why."""

    path: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "reason": self.reason}


def shown(path: str) -> str:
    """A path fit to print on one line: control characters and bytes that are not UTF-8 appear as ``\\x01`` escapes."""
    text = path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return "".join(f"\\x{ord(ch):02x}" if ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F else ch for ch in text)


@dataclass
class Scan:
    """What a source holds: its files in path order, and what could not be listed."""

    files: list[SourceFile] = field(default_factory=list)
    problems: list[Failure] = field(default_factory=list)


class ImportSource(abc.ABC):
    """A tree of files to import; use as ``async with`` (or call :meth:`close`)."""

    #: The source as the user named it, for messages and reports.
    url: str

    @abc.abstractmethod
    async def scan(self) -> Scan:
        """Every regular file, each once, sorted by path; unreadable folders are reported, not fatal."""

    @abc.abstractmethod
    async def data(self, file: SourceFile) -> PutData:
        """The file's bytes as ``Tenant.put`` takes them, streamed when it reads them."""

    @abc.abstractmethod
    async def digest(self, file: SourceFile) -> tuple[str, int]:
        """The file's BLAKE3 digest (exactly as the store computes it) and its size now."""

    async def digests(self, files: Sequence[SourceFile]) -> list[tuple[str, int] | Exception]:
        """:meth:`digest` of each file, or the error (BlobStoreError, OSError) that stopped it, in order."""
        return [await _outcome(self.digest(file)) for file in files]

    async def contents(self, files: Sequence[SourceFile]) -> list[PutData | Exception]:
        """:meth:`data` of each file, or the error (BlobStoreError, OSError) that stopped it, in order."""
        return [await _outcome(self.data(file)) for file in files]

    async def close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release clients; the source is unusable afterwards."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class DirectorySource(ImportSource):
    """The regular files under a local directory; symbolic links, special files and ``skip`` folders are skipped.

    ``skip`` names folders never to import, such as the store's own home when
    it lies inside the source (its files change while they are read).
    """

    def __init__(self, root: Path, *, skip: Sequence[Path] = ()) -> None:
        self.root = root
        self.url = str(root)
        self.skip = {path.resolve() for path in skip}

    async def scan(self) -> Scan:
        if not self.root.is_dir():
            raise InvalidInput(f"{self.root}: {'not a directory' if self.root.exists() else 'no such directory'}")
        return await asyncio.to_thread(self._walk)

    def _walk(self) -> Scan:
        scan = Scan()

        def unreadable(exc: OSError) -> None:
            where = Path(exc.filename).relative_to(self.root).as_posix() if exc.filename else "."
            scan.problems.append(Failure(shown(where), f"cannot list: {exc.strerror}"))

        for directory, subdirectories, names in os.walk(self.root, onerror=unreadable):
            kept = [name for name in subdirectories if Path(directory, name).resolve() not in self.skip]
            subdirectories[:] = sorted(kept)
            base = Path(directory).relative_to(self.root)
            for name in names:
                relative = (base / name).as_posix()
                try:
                    info = os.lstat(Path(directory, name))
                except OSError as exc:
                    scan.problems.append(Failure(shown(relative), f"cannot read: {exc.strerror}"))
                    continue
                if stat.S_ISREG(info.st_mode):
                    scan.files.append(SourceFile(relative, info.st_size))
        scan.files.sort(key=lambda file: file.path)
        return scan

    def _path(self, file: SourceFile) -> Path:
        return self.root / file.path

    async def data(self, file: SourceFile) -> PutData:
        return self._path(file)

    async def digest(self, file: SourceFile) -> tuple[str, int]:
        return await asyncio.to_thread(hash_file, self._path(file))

    async def digests(self, files: Sequence[SourceFile]) -> list[tuple[str, int] | Exception]:
        """Hashes the files one after another in one worker thread: small files cost no thread hop each."""
        return await asyncio.to_thread(self._hash_all, files)

    def _hash_all(self, files: Sequence[SourceFile]) -> list[tuple[str, int] | Exception]:
        buffer = bytearray(_HASH_BUFFER)
        return [_caught(partial(hash_file, self._path(file), buffer)) for file in files]

    async def contents(self, files: Sequence[SourceFile]) -> list[PutData | Exception]:
        """Reads the files of at most :data:`READ_WHOLE` bytes (as listed) one after another in one worker
        thread, each whole (its bytes, as they are now: a file that grew past the limit is a path after all);
        the others are their paths, read by the put."""
        return await asyncio.to_thread(self._read_all, files)

    def _read_all(self, files: Sequence[SourceFile]) -> list[PutData | Exception]:
        return [
            _caught(partial(read_whole, self._path(file), READ_WHOLE)) if file.size <= READ_WHOLE else self._path(file)
            for file in files
        ]


async def _outcome(work: Awaitable[T]) -> T | Exception:
    """What ``work`` returns, or the error (BlobStoreError, OSError) that stopped it."""
    try:
        return await work
    except (BlobStoreError, OSError) as exc:
        return exc


def _caught(work: Callable[[], T]) -> T | Exception:
    """What ``work()`` returns, or the error (BlobStoreError, OSError) that stopped it."""
    try:
        return work()
    except (BlobStoreError, OSError) as exc:
        return exc


@contextlib.contextmanager
def _opened_regular(path: Path) -> Iterator[io.FileIO]:
    """``path`` open for reading (unbuffered), if it is a regular file; InvalidInput if not.

    No following a link swapped in since the scan; no blocking on a FIFO: the check refuses both.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb", buffering=0) as file:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InvalidInput(f"{path} is not a regular file")
        yield file


def read_whole(path: Path, most: int) -> bytes | Path:
    """The bytes of the regular file ``path`` if it holds at most ``most`` of them, else ``path`` itself."""
    pieces: list[bytes] = []
    held = 0
    with _opened_regular(path) as file:
        while held <= most and (piece := file.read(most + 1 - held)):  # a read may return fewer (NFS, FUSE)
            pieces.append(piece)
            held += len(piece)
    return b"".join(pieces) if held <= most else path


def hash_file(path: Path, buffer: bytearray | None = None) -> tuple[str, int]:
    """BLAKE3 digest and size of a regular file, read through ``buffer`` (memory stays bounded).

    The digest is the store's: BLAKE3 of the bytes, whatever the chunking.
    """
    view = memoryview(buffer if buffer is not None else bytearray(_HASH_BUFFER))
    hasher = new_hasher()
    size = 0
    with _opened_regular(path) as file:
        while count := file.readinto(view):
            hasher.update(view[:count])
            size += count
    return str(hasher.hexdigest()), size


class BucketSource(ImportSource):
    """The objects under ``prefix/`` of another S3 (or S3-compatible) bucket; ``.../`` folder markers are skipped."""

    def __init__(self, url: str, storage: S3Storage) -> None:
        self.url = url
        self.storage = storage

    async def scan(self) -> Scan:
        try:
            await self.storage.check()
        except ConfigurationError as exc:  # its message names the store's variables; say what this source is
            raise ConfigurationError(f"cannot read the source {self.url}: {exc.__cause__ or exc}") from exc
        scan = Scan(
            files=[SourceFile(item.key, item.size) async for item in self.storage.list() if item.key[-1:] != "/"]
        )
        scan.files.sort(key=lambda file: file.path)
        return scan

    async def data(self, file: SourceFile) -> PutData:
        return self.storage.read(file.path)

    async def digest(self, file: SourceFile) -> tuple[str, int]:
        hasher = new_hasher()
        size = 0
        async for chunk in self.storage.read(file.path):
            hasher.update(chunk)
            size += len(chunk)
        return str(hasher.hexdigest()), size

    async def close(self) -> None:
        await self.storage.close()


def open_source(
    source: str, *, endpoint_url: str | None = None, profile: str | None = None, skip: Sequence[Path] = ()
) -> ImportSource:
    """The source ``source`` names: ``s3://bucket[/prefix]`` or a local directory.

    ``endpoint_url`` (MinIO, R2, ...) and ``profile`` (a named AWS profile; default:
    the standard credential chain) apply to S3 only; ``skip`` (folders left out)
    to directories only. Raises ConfigurationError for an unusable URL or
    profile; nothing is contacted yet.
    """
    if not source.startswith("s3://"):
        if endpoint_url is not None or profile is not None:
            raise InvalidInput("--source-endpoint-url and --source-profile apply to s3:// sources only")
        return DirectorySource(Path(source), skip=skip)
    parts = urlsplit(source)
    prefix = parts.path.strip("/")
    if not parts.netloc or parts.query or parts.fragment:
        raise ConfigurationError(f"SOURCE: {source!r} is not s3://bucket[/prefix]")
    with needs("s3", "importing from an S3 bucket"):
        import aioboto3
        from botocore.exceptions import BotoCoreError

        from blobstore.storage import S3Storage
    try:
        session = aioboto3.Session(profile_name=profile)
        region = session.region_name or "us-east-1"
    except BotoCoreError as exc:
        raise ConfigurationError(f"--source-profile: {exc}") from None
    try:
        storage = S3Storage(parts.netloc, prefix, endpoint_url=endpoint_url, region=region, session=session)
    except ConfigurationError:
        raise ConfigurationError(f"--source-endpoint-url: {endpoint_url!r} is not an http:// or https:// URL") from None
    return BucketSource(source, storage)
