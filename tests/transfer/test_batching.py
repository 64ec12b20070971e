"""How an import cuts its files into batches, and how a directory hands a batch's files to the put.

Pure: no store. :func:`blobstore.transfer.importer.batched` decides how many
files share a ``put_many`` (and so a transaction and a directory's fsync);
:meth:`DirectorySource.contents` reads a batch's small files whole, in one go,
and leaves large ones to be streamed from their path.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from blobstore.errors import InvalidInput
from blobstore.store import MAX_BATCH
from blobstore.transfer import sources
from blobstore.transfer.importer import batched
from blobstore.transfer.selection import Entry
from blobstore.transfer.sources import READ_WHOLE, DirectorySource, SourceFile

MiB = 1024 * 1024


def entries(sizes: list[int]) -> list[Entry]:
    return [Entry(SourceFile(f"f{index:05}", size), f"k{index:05}") for index, size in enumerate(sizes)]


def test_batches_keep_every_file_once_in_order_and_give_every_job_a_share() -> None:
    """2,450 small files for 4 jobs: 8 batches, two per job, in order."""
    files = entries([10_000] * 2450)
    batches = list(batched(files, 4))
    assert [entry for batch in batches for entry in batch] == files
    assert [len(batch) for batch in batches] == [307] * 7 + [301]


def test_batches_are_never_larger_than_a_put_many_takes_nor_smaller_than_the_minimum() -> None:
    """One job: batches of MAX_BATCH files; few files for many jobs: batches of 100, not one per job."""
    assert [len(batch) for batch in batched(entries([100] * 2500), 1)] == [MAX_BATCH] * 2 + [500]
    assert [len(batch) for batch in batched(entries([100] * 300), 1)] == [150, 150]
    assert [len(batch) for batch in batched(entries([100] * 150), 8)] == [100, 50]


def test_a_batch_holds_at_most_16_mib_of_files_read_into_memory() -> None:
    """Small files (read whole) end a batch at 16 MiB; large ones (streamed from their path) do not count."""
    small = entries([READ_WHOLE] * 200)
    assert [len(batch) for batch in batched(small, 1)] == [64, 64, 64, 8]
    assert [len(batch) for batch in batched(entries([READ_WHOLE + 1] * 200), 1)] == [100, 100]  # two shares


def test_large_files_are_shared_out_by_bytes_between_the_jobs() -> None:
    """Eight 100 MiB files for 4 jobs: one per batch, so they are hashed and written side by side."""
    assert [len(batch) for batch in batched(entries([100 * MiB] * 8), 4)] == [1] * 8


async def test_a_directory_reads_small_files_whole_and_leaves_large_ones_to_stream(tmp_path: Path) -> None:
    """Up to READ_WHOLE bytes: the bytes; past it (or grown past it since the scan): the path; a file that
    became a symbolic link or vanished: its error, the other files unaffected."""
    data = {"small": os.urandom(1000), "edge": os.urandom(READ_WHOLE), "large": os.urandom(READ_WHOLE + 1)}
    for name, content in data.items():
        (tmp_path / name).write_bytes(content)
    (tmp_path / "grew").write_bytes(os.urandom(READ_WHOLE + 5))
    (tmp_path / "target").write_bytes(b"elsewhere")
    (tmp_path / "link").symlink_to(tmp_path / "target")
    source = DirectorySource(tmp_path)
    listed = [SourceFile(name, len(content)) for name, content in data.items()]
    listed += [SourceFile("grew", 10), SourceFile("link", 9), SourceFile("gone", 3)]

    small, edge, large, grew, link, gone = await source.contents(listed)

    assert (small, edge) == (data["small"], data["edge"])
    assert (large, grew) == (tmp_path / "large", tmp_path / "grew")
    assert isinstance(link, OSError)  # O_NOFOLLOW: a link swapped in is not followed
    assert isinstance(gone, FileNotFoundError)


async def test_a_directory_refuses_to_read_what_is_not_a_regular_file(tmp_path: Path) -> None:
    """A FIFO swapped in since the scan is refused, without blocking on it."""
    os.mkfifo(tmp_path / "fifo")
    [fifo] = await DirectorySource(tmp_path).contents([SourceFile("fifo", 0)])
    assert isinstance(fifo, InvalidInput)


def test_a_small_file_read_in_short_pieces_is_read_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A filesystem may return fewer bytes than a read asks for (NFS, FUSE): the file is still read to its end."""
    path = tmp_path / "small"
    path.write_bytes(bytes(range(256)) * 40)
    opened = sources._opened_regular

    @contextlib.contextmanager
    def trickling(target: Path) -> Iterator[object]:
        with opened(target) as file:
            yield SimpleNamespace(read=lambda count: file.read(min(count, 1000)))

    monkeypatch.setattr(sources, "_opened_regular", trickling)

    assert sources.read_whole(path, READ_WHOLE) == bytes(range(256)) * 40
    assert sources.read_whole(path, 10_239) == path  # one byte too many: left to stream from its path
    assert sources.read_whole(path, 10_240) == bytes(range(256)) * 40
