"""Everything the command line prints: results (human or ``--json``) on stdout, progress and errors on stderr.

Errors are always one line, ``blobstore: error: <message>``; an unexpected
exception is one line too (``blobstore: internal error: ...``), with its
traceback only when ``BLOBSTORE_DEBUG=1``. Progress bars go to stderr, and
only when stderr is a terminal.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click
from rich.filesize import decimal

from blobstore.errors import BlobStoreError
from blobstore.model.progress import Progress
from blobstore.model.results import BlobInfo

if TYPE_CHECKING:  # rich's consoles and bars load only when a command draws one (a fast `blobstore --help`)
    from rich.console import Console

PROG = "blobstore"
#: Single transfers smaller than this finish too fast to deserve a progress bar.
PROGRESS_MIN_BYTES = 8 * 1024 * 1024
DIGEST_SHOWN = 16

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

#: What click (8.2+) raises for a group called without a command.
_NO_ARGS_IS_HELP: type[click.UsageError] | tuple[()] = getattr(click.exceptions, "NoArgsIsHelpError", ())


class Interrupted(Exception):
    """Ctrl-C, carried past click (which would print an extra blank line for a KeyboardInterrupt)."""


class OutputClosed(Exception):
    """Whoever read our stdout went away (broken pipe), carried past click, which would exit silently."""


# --- results --------------------------------------------------------------------------------------


def size_text(size: int) -> str:
    """A size for people: ``12 bytes``, ``1.2 MB``."""
    return decimal(size)


def time_text(moment: datetime) -> str:
    """A timestamp for people: ``2026-11-03 14:05:09`` in UTC."""
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def echo_json(value: Any) -> None:
    """Print ``value`` as indented JSON."""
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


def blob_line(verb: str, info: BlobInfo, *, subject: str | None = None, target: str | None = None) -> str:
    """One human line about a stored value: ``put acme/k  1.2 MB  digest=abcd…  (deduplicated)``.

    Only a put tells whether it was deduplicated (a copy always is).
    """
    line = f"{verb} {subject or f'{info.tenant}/{info.key}'}"
    if target is not None:
        line += f" -> {target}"
    line += f"  {size_text(info.size)}  digest={info.digest[:DIGEST_SHOWN]}…"
    return line + ("  (deduplicated)" if verb == "put" and info.deduplicated else "")


def echo_blob(
    verb: str,
    info: BlobInfo,
    *,
    as_json: bool,
    subject: str | None = None,
    target: str | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Report one put/cp/get result: a :func:`blob_line`, or ``BlobInfo.to_dict()`` plus ``extra`` as JSON."""
    if as_json:
        echo_json(info.to_dict() | (extra or {}))
    else:
        click.echo(blob_line(verb, info, subject=subject, target=target))


def echo_stat(info: BlobInfo, *, as_json: bool) -> None:
    """Everything about one key, as aligned ``field  value`` lines or one JSON object."""
    if as_json:
        echo_json(info.to_dict())
        return
    fields = [
        ("tenant", info.tenant),
        ("key", info.key),
        ("size", size_text(info.size) + (f" ({info.size} bytes)" if info.size >= 1000 else "")),
        ("digest", info.digest),
        ("content_type", info.content_type or "-"),
        ("created_at", info.created_at.isoformat()),
    ]
    fields += [(f"meta {name}", value) for name, value in sorted(info.metadata.items())]
    width = max(len(name) for name, _ in fields)
    for name, value in fields:
        click.echo(f"{name:<{width}}  {value}")


@contextlib.contextmanager
def listing(*, as_json: bool) -> Iterator[Callable[[BlobInfo], None]]:
    """Print a listing as it streams in: ``created  size  key`` lines, or one JSON array.

    Yields ``show(info)``. On an error the JSON array stays unclosed, so no parser takes it for a whole listing.
    """
    count = 0

    def show(info: BlobInfo) -> None:
        nonlocal count
        if as_json:
            text = json.dumps(info.to_dict(), ensure_ascii=False)
            click.echo(("[\n  " if count == 0 else ",\n  ") + text, nl=False)
        else:
            click.echo(f"{time_text(info.created_at)}  {size_text(info.size):>10}  {info.key}")
        count += 1

    yield show
    if as_json:
        click.echo("[]" if count == 0 else "\n]")


# --- progress -------------------------------------------------------------------------------------


def stderr_console() -> Console:
    """The console for everything that is not a result."""
    from rich.console import Console

    return Console(stderr=True)


def stderr_is_terminal() -> bool:
    """True when a person watches stderr: only then are progress bars drawn (FORCE_COLOR does not count)."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


@contextlib.contextmanager
def transfer_progress(
    description: str, total_bytes: int | None, *, files: int | None = None, pulse: bool = False
) -> Iterator[Callable[[int], None]]:
    """A byte progress bar on stderr, when stderr is a terminal; yields ``advance(nbytes)``.

    Single transfers (``files`` None) get a bar only from :data:`PROGRESS_MIN_BYTES`
    on; ``files`` adds a files-done counter, and each ``advance`` counts one file.
    ``pulse`` animates the bar without filling it, for work whose progress cannot be observed;
    otherwise the bar shows the time remaining.
    """
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        ProgressColumn,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )
    from rich.progress import Progress as RichProgress

    console = stderr_console()
    big = total_bytes is not None and total_bytes >= PROGRESS_MIN_BYTES
    shown = stderr_is_terminal() and (files is not None or big)
    columns: list[str | ProgressColumn] = [TextColumn("{task.description}")]
    if files is not None:
        columns.append(TextColumn("{task.fields[files]}/" + str(files) + " files"))
    columns += [BarColumn(), DownloadColumn(), TransferSpeedColumn()]
    if not pulse:
        columns.append(TimeRemainingColumn())
    with RichProgress(*columns, console=console, transient=True, disable=not shown) as bar:
        task = bar.add_task(description, total=None if pulse else total_bytes, files=0)
        done_files = 0

        def advance(nbytes: int) -> None:
            nonlocal done_files
            done_files += files is not None
            bar.update(task, advance=nbytes, files=done_files)

        yield advance


@contextlib.contextmanager
def phase_progress() -> Iterator[Progress]:
    """A bar per phase on stderr (a terminal only) fed by a :class:`blobstore.model.progress.Progress` callback.

    For the long maintenance commands (gc, fsck)::

        with phase_progress() as progress:
            stats = await store.gc(progress=progress)
    """
    from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as RichProgress

    console = stderr_console()
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with RichProgress(*columns, console=console, transient=True, disable=not stderr_is_terminal()) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(phase: str, advance: int, total: int | None) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(phase, total=total)
            bar.update(tasks[phase], advance=advance, total=total)

        yield progress


# --- errors ---------------------------------------------------------------------------------------


def notice(message: str) -> None:
    """Print ``blobstore: <message>`` as one line on stderr (something worth knowing, not an error)."""
    _stderr_line(f"{PROG}: {message}")


def error_line(message: str) -> None:
    """Print ``blobstore: error: <message>`` as one line on stderr."""
    _stderr_line(f"{PROG}: error: {message}")


def report_failure(exc: BaseException) -> int:
    """Print one line on stderr for anything that ended a command; return the exit code.

    The one exception: a bare ``blobstore`` (or ``blobstore db``) prints its help, as click does.
    """
    if isinstance(exc, _NO_ARGS_IS_HELP) and exc.ctx is not None:
        _stderr_line(exc.ctx.get_help())
        return EXIT_USAGE
    if isinstance(exc, click.UsageError):
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        error_line(_one_line(exc.format_message()) + hint)
        return EXIT_USAGE
    if isinstance(exc, click.ClickException):
        error_line(_one_line(exc.format_message()))
        return exc.exit_code
    if isinstance(exc, Interrupted | KeyboardInterrupt | click.Abort):
        error_line("interrupted")
        return EXIT_INTERRUPTED
    if isinstance(exc, OutputClosed):
        error_line("output closed before everything was written (broken pipe)")
        return EXIT_ERROR
    if isinstance(exc, BlobStoreError):
        error_line(_one_line(str(exc)) or type(exc).__name__)
        return EXIT_ERROR
    if isinstance(exc, OSError) and exc.strerror:
        where = f"{os.fsdecode(exc.filename)}: " if exc.filename is not None else ""
        error_line(f"{where}{exc.strerror}")
        return EXIT_ERROR
    if os.environ.get("BLOBSTORE_DEBUG") == "1":
        traceback.print_exception(exc, file=sys.stderr)
    _stderr_line(
        f"{PROG}: internal error: {type(exc).__name__}: {_one_line(str(exc))} "
        "(set BLOBSTORE_DEBUG=1 to see the traceback)"
    )
    return EXIT_ERROR


def is_broken_pipe(exc: BaseException) -> bool:
    """True for the error writing to a closed pipe raises."""
    return isinstance(exc, OSError) and exc.errno == errno.EPIPE


def silence_stdout() -> None:
    """Point fd 1 at /dev/null so the interpreter's final flush of a broken pipe stays quiet."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        fileno = sys.stdout.fileno()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fileno)
        os.close(devnull)


def _one_line(message: str) -> str:
    return " ".join(message.split())


def _stderr_line(line: str) -> None:
    with contextlib.suppress(OSError, ValueError):
        click.echo(line, err=True)
