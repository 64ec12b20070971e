"""Export a tenant's keys under a prefix to a directory tree, verified, safe and resumable.

Key ``prefix + p`` becomes the file ``DEST/p``. Each file is streamed through
``Tenant.open`` (which checks the bytes against their digest) into a temporary
file in its folder, then renamed over the final name, so a file is either
complete and verified or absent; a failed check leaves nothing behind.

Nothing is ever written outside DEST: folders are opened one level at a time
relative to their parent, refusing symbolic links (``O_NOFOLLOW``), and a file
name that is a symbolic link is refused too. A file that already exists with
the key's size and digest is skipped, so an interrupted export resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import stat
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blobstore.core.ingest import new_hasher
from blobstore.errors import BlobStoreError, UnsafePath
from blobstore.model.results import BlobInfo
from blobstore.store import MAX_LIST_LIMIT, Tenant
from blobstore.transfer.parallel import Advance, check_jobs, for_each, no_advance
from blobstore.transfer.sources import Failure

_LIST_PAGE = MAX_LIST_LIMIT
_READ_CHUNK = 1024 * 1024
_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW


@dataclass
class ExportResult:
    """What an export did; ``ok`` when nothing failed."""

    tenant: str
    dest: str
    prefix: str
    keys: int = 0
    written: int = 0
    written_bytes: int = 0
    #: Files that already held the key's size and digest (an earlier run wrote them).
    skipped: int = 0
    skipped_bytes: int = 0
    failures: list[Failure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "dest": self.dest,
            "prefix": self.prefix,
            "keys": self.keys,
            "written": self.written,
            "written_bytes": self.written_bytes,
            "skipped": self.skipped,
            "skipped_bytes": self.skipped_bytes,
            "failed": len(self.failures),
            "failures": [failure.to_dict() for failure in self.failures],
        }


async def plan_export(tenant: Tenant, prefix: str = "") -> list[BlobInfo]:
    """Every key of ``tenant`` under ``prefix``, in code-point order: what :func:`export_tree` writes."""
    found: list[BlobInfo] = []
    after: str | None = None
    while True:
        page = await tenant.list(prefix, limit=_LIST_PAGE, after=after)
        found += page.items
        if page.next_after is None:
            return found
        after = page.next_after


def relative_parts(key: str, prefix: str) -> list[str]:
    """The path segments of ``key`` below ``prefix``; UnsafePath if they do not name a file inside DEST.

    Keys are literal, so a directory marker (``photos/``), a leading ``/`` or an empty, ``.`` or ``..`` segment
    is a valid key that no file name can hold: it is reported, never resolved."""
    parts = key[len(prefix) :].split("/")
    if any(part in ("", ".", "..") for part in parts):
        if prefix and not prefix.endswith("/") and parts[0] == "":
            raise UnsafePath(f"key {key!r} names no file below the prefix {prefix!r} (add a '/' to the prefix?)")
        raise UnsafePath(f"key {key!r} names no file: it has an empty, '.' or '..' path segment")
    return parts


async def export_tree(
    tenant: Tenant,
    dest: Path,
    plan: list[BlobInfo],
    *,
    prefix: str = "",
    jobs: int = 4,
    progress: Advance = no_advance,
) -> ExportResult:
    """Write the keys of ``plan`` (see :func:`plan_export`; ``prefix`` is cut from each) to ``dest``
    (created if missing), ``jobs`` at a time. ``progress`` is called with each key's size as it is done."""
    check_jobs(jobs)
    result = ExportResult(tenant.name, str(dest), prefix, keys=len(plan))
    await asyncio.to_thread(dest.mkdir, parents=True, exist_ok=True)
    root = await asyncio.to_thread(os.open, dest, os.O_RDONLY | os.O_DIRECTORY)  # DEST itself may be a link

    async def one(info: BlobInfo) -> None:
        try:
            await _export_key(tenant, root, info, prefix, result)
        except (BlobStoreError, OSError) as exc:
            result.failures.append(Failure(info.key, _reason(exc)))
        progress(info.size)

    try:
        await for_each(plan, jobs, one)
    finally:
        os.close(root)
    result.failures.sort(key=lambda failure: failure.path)
    return result


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and not isinstance(exc, BlobStoreError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


async def _export_key(tenant: Tenant, root: int, info: BlobInfo, prefix: str, result: ExportResult) -> None:
    *folders, name = relative_parts(info.key, prefix)
    with _opened_folder(root, folders, info.key) as folder:
        if await asyncio.to_thread(_holds, folder, name, info):
            result.skipped += 1
            result.skipped_bytes += info.size
            return
        temporary = f".blobstore-{uuid.uuid4().hex}.part"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666, dir_fd=folder)
        try:
            with os.fdopen(fd, "wb") as out:
                async with tenant.open(info.key) as stream:
                    async for chunk in stream:
                        await asyncio.to_thread(out.write, chunk)
            os.replace(temporary, name, src_dir_fd=folder, dst_dir_fd=folder)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=folder)
            raise
    result.written += 1
    result.written_bytes += info.size


@contextlib.contextmanager
def _opened_folder(root: int, folders: list[str], key: str) -> Iterator[int]:
    """A descriptor of ``root/folders...``, creating what is missing and refusing symbolic links."""
    fd = os.dup(root)
    try:
        for index, part in enumerate(folders):
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, dir_fd=fd)
            try:
                child = os.open(part, _DIRECTORY_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    where = "/".join(folders[: index + 1])
                    raise UnsafePath(f"{where} is a symbolic link or not a folder; refusing to write {key!r}") from None
                raise
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def _holds(folder: int, name: str, info: BlobInfo) -> bool:
    """True if ``name`` is a regular file with the key's size and digest; UnsafePath for a symbolic link or folder."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=folder)
    except FileNotFoundError:
        return False
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafePath(f"{info.key!r}: the file in DEST is a symbolic link; refusing to replace it") from None
        raise
    with os.fdopen(fd, "rb") as file:
        found = os.fstat(fd)
        if not stat.S_ISREG(found.st_mode):
            raise UnsafePath(f"{info.key!r}: DEST holds something other than a file there")
        if found.st_size != info.size:
            return False
        hasher = new_hasher()
        while chunk := file.read(_READ_CHUNK):
            hasher.update(chunk)
    return bool(hasher.hexdigest() == info.digest)
