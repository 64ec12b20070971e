"""Object commands: put, get, stat, ls, rm, cp; on the local store, or on a server (blobstore.cli.remote)."""

from __future__ import annotations

import contextlib
import os
import stat as statmod
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

import click

from blobstore.cli import output
from blobstore.cli.app import Duration, common_options, key_argument, options, tenant_argument
from blobstore.cli.remote import on_tenant, remote_options
from blobstore.errors import BlobStoreError
from blobstore.model.keys import validate_key
from blobstore.model.results import BlobInfo

if TYPE_CHECKING:  # the store loads when a command runs, not for --help
    from blobstore.contract import TenantAPI
    from blobstore.store import PutItem

#: Page size when following a listing to its end.
LIST_PAGE = 1000
#: Files per batch of ``put --recursive`` (one or two transactions each; progress moves per batch).
PUT_BATCH = 200

T = TypeVar("T")


def _succeeded(outcomes: list[T | BlobStoreError]) -> list[T]:
    """The results of a batch, or its first item's error raised (the command fails on it as on a single call)."""
    for outcome in outcomes:
        if isinstance(outcome, BlobStoreError):
            raise outcome
    return [outcome for outcome in outcomes if not isinstance(outcome, BlobStoreError)]


def _metadata(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    metadata: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"expected NAME=VALUE, got {item!r}")
        metadata[name] = value
    return metadata


@dataclass(frozen=True)
class _PutOptions:
    content_type: str | None
    metadata: dict[str, str]
    if_absent: bool
    expires_in: int | None

    async def put(self, tenant: TenantAPI, key: str, source: Path | IO[bytes]) -> BlobInfo:
        return await tenant.put(key, source, **self._arguments(source))

    def item(self, key: str, path: Path) -> PutItem:
        """The put of ``path`` under ``key`` as one item of a batch."""
        from blobstore.store import PutItem

        return PutItem(key, path, **self._arguments(path))

    def _arguments(self, source: Path | IO[bytes]) -> dict[str, Any]:
        import mimetypes  # reads the system's type tables: only when a file is put

        guessed = mimetypes.guess_type(source.name)[0] if isinstance(source, Path) else None
        return {
            "content_type": self.content_type or guessed,
            "metadata": self.metadata,
            "if_absent": self.if_absent,
            "expires_in": self.expires_in,
        }


@click.command()
@tenant_argument
@key_argument(required=False)
@click.argument("file", required=False, metavar="[FILE|-]")
@click.option("-r", "--recursive", metavar="DIR", help="Store every regular file under DIR (symlinks are skipped).")
@click.option("--prefix", metavar="P", help="With --recursive: key = P + path relative to DIR (add your own '/').")
@click.option("--content-type", metavar="TYPE", help="Content type to record (default: guessed from the file name).")
@click.option("--meta", multiple=True, metavar="NAME=VALUE", callback=_metadata, help="Metadata to record; repeatable.")
@click.option("--if-absent", is_flag=True, help="Fail instead of replacing a key that exists.")
@click.option(
    "--expires-in",
    type=Duration(),
    metavar="DURATION",
    help="Delete the key this long after it is written (7d, 12h, 30m): `blobstore lifecycle run` does.",
)
@common_options
@remote_options
def put(
    tenant: str,
    key: str | None,
    file: str | None,
    recursive: str | None,
    prefix: str | None,
    content_type: str | None,
    meta: dict[str, str],
    if_absent: bool,
    expires_in: int | None,
) -> None:
    """Store FILE (or stdin) under KEY, or every file under DIR with -r.

    \b
      blobstore put acme invoices/11.pdf ./11.pdf
      some-command | blobstore put acme logs/today.txt -
      blobstore put acme --recursive ./site --prefix site/

    --json prints the stored key (an array of them with --recursive): tenant,
    key, digest, size, deduplicated (true when this tenant already held the bytes).
    """
    how = _PutOptions(content_type, meta, if_absent, expires_in)
    if recursive is not None:
        if key is not None or file is not None:
            raise click.UsageError("--recursive DIR takes no KEY or FILE")
        _put_tree(tenant, Path(recursive), prefix or "", how)
        return
    if key is None:
        raise click.UsageError("Missing argument 'KEY' (or --recursive DIR).")
    if prefix is not None:
        raise click.UsageError("--prefix goes with --recursive")
    source: Path | IO[bytes]
    if file is None or file == "-":
        source = sys.stdin.buffer
        if file is None and source.isatty():
            raise click.UsageError("Missing argument 'FILE' (use '-' to read stdin).")
        size = None
    else:
        source = Path(file)
        size = _size_of(source)

    async def work(handle: TenantAPI) -> BlobInfo:
        with output.transfer_progress(f"put {key}", size, pulse=True):
            return await how.put(handle, key, source)

    output.echo_blob("put", on_tenant(tenant, work, creates=True), as_json=options().json)


def _size_of(path: Path) -> int | None:
    """The size of a regular file, None for anything else (put reports what is wrong with it)."""
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_size if statmod.S_ISREG(info.st_mode) else None


def _put_tree(tenant: str, root: Path, prefix: str, how: _PutOptions) -> None:
    files = [(path, validate_key(prefix + path.relative_to(root).as_posix()), size) for path, size in _walk(root)]
    files.sort(key=lambda file: file[1])  # stored and printed in key order, as ls lists them
    total = sum(size for _, _, size in files)

    async def work(handle: TenantAPI) -> list[BlobInfo]:
        done: list[BlobInfo] = []
        with output.transfer_progress(f"put {tenant}", total, files=len(files)) as advance:
            for start in range(0, len(files), PUT_BATCH):
                batch = files[start : start + PUT_BATCH]
                done += _succeeded(await handle.put_many([how.item(key, path) for path, key, _ in batch]))
                advance(sum(size for _, _, size in batch))
        return done

    results = on_tenant(tenant, work, creates=True)
    if options().json:
        output.echo_json([info.to_dict() for info in results])
        return
    for info in results:
        output.echo_blob("put", info, as_json=False)
    deduplicated = sum(info.deduplicated for info in results)
    click.echo(
        f"put {len(results)} file{'' if len(results) == 1 else 's'}, "
        f"{output.size_text(sum(info.size for info in results))} ({deduplicated} deduplicated)"
    )


def _walk(root: Path) -> Iterator[tuple[Path, int]]:
    """Every regular file under ``root`` with its size; symlinks are skipped."""
    if not root.is_dir():
        raise click.ClickException(f"{root}: {'not a directory' if root.exists() else 'no such directory'}")

    def fail(exc: OSError) -> None:
        raise exc

    for directory, _subdirectories, names in os.walk(root, onerror=fail):
        for name in names:
            path = Path(directory, name)
            info = path.lstat()
            if statmod.S_ISREG(info.st_mode):
                yield path, info.st_size


@click.command()
@tenant_argument
@key_argument()
@click.option("-o", "--output", "target", metavar="FILE", help="Write to FILE (replaced only once complete).")
@common_options
@remote_options
def get(tenant: str, key: str, target: str | None) -> None:
    """Write a key's value to stdout, or to FILE with -o.

    The value is checked against its digest as it streams; a mismatch is an
    error that leaves FILE untouched (on stdout it comes after the bytes:
    check the exit status). --json needs -o and prints the key's details.
    """
    as_json = options().json
    if target is None or target == "-":
        if as_json:
            raise click.UsageError("--json needs -o FILE (the value itself goes to stdout)")
        on_tenant(tenant, lambda handle: _to_stdout(handle, key))
        return
    path = Path(target)
    if path.is_dir():
        raise click.ClickException(f"{target}: is a directory")
    info = on_tenant(tenant, lambda handle: _to_file(handle, key, path))
    output.echo_blob("get", info, as_json=as_json, target=target, extra={"path": target})


async def _to_stdout(tenant: TenantAPI, key: str) -> None:
    import asyncio

    stdout = sys.stdout.buffer
    async with tenant.open(key) as stream:
        async for chunk in stream:
            await asyncio.to_thread(stdout.write, chunk)
    await asyncio.to_thread(stdout.flush)


async def _to_file(tenant: TenantAPI, key: str, path: Path) -> BlobInfo:
    import asyncio

    async with tenant.open(key) as stream:
        with output.transfer_progress(f"get {key}", stream.info.size) as advance, _replacing(path) as out:
            async for chunk in stream:
                await asyncio.to_thread(out.write, chunk)
                advance(len(chunk))
    return stream.info


@contextlib.contextmanager
def _replacing(path: Path) -> Iterator[IO[bytes]]:
    """A new file next to ``path`` that replaces it on success and vanishes on failure."""
    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    except OSError as exc:
        raise click.ClickException(f"cannot write {path}: {exc.strerror}") from None
    temporary = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
        umask = os.umask(0)
        os.umask(umask)
        temporary.chmod(0o666 & ~umask)
        temporary.replace(path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


@click.command()
@tenant_argument
@key_argument()
@common_options
@remote_options
def stat(tenant: str, key: str) -> None:
    """Show a key's size, digest, content type, metadata and creation time."""
    output.echo_stat(on_tenant(tenant, lambda handle: handle.stat(key)), as_json=options().json)


@click.command()
@tenant_argument
@click.argument("prefix", default="", required=False)
@click.option("--limit", type=click.IntRange(min=1), metavar="N", help="Stop after N keys (default: all).")
@common_options
@remote_options
def ls(tenant: str, prefix: str, limit: int | None) -> None:
    """List keys starting with PREFIX, in code-point order.

    Human output: created (UTC), size, key. --json prints one JSON array of
    objects with tenant, key, digest, size, content_type, metadata, created_at.
    """
    as_json = options().json

    async def work(handle: TenantAPI) -> str | None:
        with output.listing(as_json=as_json) as show:
            return await _follow(handle, prefix, limit, show)

    if (last := on_tenant(tenant, work)) is not None and not as_json:
        click.echo(f"more keys follow {last!r}: raise --limit to list them", err=True)


async def _follow(tenant: TenantAPI, prefix: str, limit: int | None, show: Callable[[BlobInfo], None]) -> str | None:
    """Show the keys of a listing, page by page, until ``limit`` keys or its end; the last key shown if the
    limit stopped it before the end, else None."""
    after: str | None = None
    remaining = limit
    while True:
        page = await tenant.list(prefix, limit=min(LIST_PAGE, remaining or LIST_PAGE), after=after)
        for info in page:
            show(info)
        if page.next_after is None:
            return None
        after = page.next_after
        if remaining is not None:
            remaining -= len(page)
            if remaining == 0:
                return after if await tenant.list(prefix, limit=1, after=after) else None


@click.command()
@tenant_argument
@key_argument("keys", nargs=-1, required=True, metavar="KEY...")
@common_options
@remote_options
def rm(tenant: str, keys: tuple[str, ...]) -> None:
    """Delete keys; bytes another key still uses stay stored. Fails naming any key that did not exist."""

    from blobstore.store import MAX_BATCH

    async def work(handle: TenantAPI) -> list[bool]:
        existed: list[bool] = []
        for start in range(0, len(keys), MAX_BATCH):
            existed += _succeeded(await handle.delete_many(keys[start : start + MAX_BATCH]))
        return existed

    existed = on_tenant(tenant, work)
    if options().json:
        output.echo_json([{"tenant": tenant, "key": k, "deleted": e} for k, e in zip(keys, existed, strict=True)])
    else:
        for key, deleted in zip(keys, existed, strict=True):
            if deleted:
                click.echo(f"deleted {tenant}/{key}")
    missing = [key for key, deleted in zip(keys, existed, strict=True) if not deleted]
    if missing:
        raise click.ClickException(f"no such key{'s' if len(missing) > 1 else ''}: {', '.join(map(repr, missing))}")


@click.command()
@tenant_argument
@key_argument("src")
@key_argument("dst")
@click.option("--if-absent", is_flag=True, help="Fail instead of replacing DST if it exists.")
@common_options
@remote_options
def cp(tenant: str, src: str, dst: str, if_absent: bool) -> None:
    """Make DST refer to SRC's bytes; nothing is copied in storage."""
    info = on_tenant(tenant, lambda handle: handle.copy(src, dst, if_absent=if_absent))
    output.echo_blob("cp", info, as_json=options().json, subject=f"{tenant}/{src}", target=f"{tenant}/{dst}")


COMMANDS = [put, get, stat, ls, rm, cp]
