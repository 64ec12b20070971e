"""Every kind of input put accepts, and the bad ones it rejects without changing anything."""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import blake3
import pytest

from blobstore import BlobStore, IntegrityError, InvalidInput, NotFound
from blobstore.storage.base import CHUNK_SIZE, Source
from tests.support.workers import check_invariants, data_objects, rows

SMALL = b"small input \x00\xff" * 7
LARGE = os.urandom(2 * CHUNK_SIZE + 12345)  # several chunks through every path


@pytest.fixture(autouse=True)
def spool_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A temporary directory of this test's own, so spool files left behind are seen (and only ours)."""
    directory = tmp_path / "spool"
    directory.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(directory))
    yield directory
    assert sorted(p.name for p in directory.glob("blobstore-spool-*")) == [], "a spool file was left behind"


async def _chunks(data: bytes, size: int = 1000) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "input.bin"
    path.write_bytes(data)
    return path


#: Ways to hand ``data`` to put; each gets a scratch directory and returns the argument.
INPUTS: dict[str, Callable[[Path, bytes], Any]] = {
    "bytes": lambda tmp, data: data,
    "bytearray": lambda tmp, data: bytearray(data),
    "memoryview": lambda tmp, data: memoryview(data),
    "memoryview-slice": lambda tmp, data: memoryview(b"<" + data + b">")[1:-1],
    "path": _write,
    "binary-file": lambda tmp, data: _write(tmp, data).open("rb"),
    "bytesio": lambda tmp, data: io.BytesIO(data),
    "async-generator": lambda tmp, data: _chunks(data),
    "async-generator-mixed": lambda tmp, data: _mixed_chunks(data),
}


async def _mixed_chunks(data: bytes) -> AsyncIterator[bytes | bytearray | memoryview]:
    """Chunks as bytes, bytearray and memoryview, including empty ones."""
    yield b""
    third = len(data) // 3
    yield data[:third]
    yield bytearray(data[third : 2 * third])
    yield b""
    yield memoryview(data[2 * third :])


@pytest.mark.parametrize("kind", sorted(INPUTS))
@pytest.mark.parametrize("data", [SMALL, b"", LARGE], ids=["small", "empty", "large"])
async def test_every_input_kind_stores_its_bytes(store: BlobStore, tmp_path: Path, kind: str, data: bytes) -> None:
    """bytes, bytearray, memoryview, Path, binary files, BytesIO and async iterables store exact bytes."""
    argument = INPUTS[kind](tmp_path, data)
    try:
        info = await store.tenant("acme").put("k", argument)
    finally:
        if hasattr(argument, "close") and not hasattr(argument, "__anext__"):
            argument.close()
    assert (info.size, info.digest) == (len(data), blake3.blake3(data).hexdigest())
    assert await store.tenant("acme").get("k") == data
    assert len(await data_objects(store)) == 1


async def test_the_same_bytes_from_different_inputs_dedup(store: BlobStore, tmp_path: Path) -> None:
    """The same bytes given as bytes, a path, a file and an async iterable are one blob with four references."""
    acme = store.tenant("acme")
    path = _write(tmp_path, SMALL)
    await acme.put("a", SMALL)
    await acme.put("b", path)
    with path.open("rb") as file:
        await acme.put("c", file)
    info = await acme.put("d", _chunks(SMALL, 5))
    assert info.deduplicated
    assert len(await data_objects(store)) == 1
    assert await rows(store, "SELECT refcount FROM blobs") == [(4,)]


async def test_an_empty_value_is_a_real_key(store: BlobStore) -> None:
    """An empty put creates a key of size 0 that exists, stats, lists and reads back as b''."""
    acme = store.tenant("acme")
    info = await acme.put("empty", b"")
    assert info.size == 0
    assert await acme.exists("empty")
    assert (await acme.stat("empty")).size == 0
    assert [(item.key, item.size) for item in await acme.list()] == [("empty", 0)]
    assert await acme.get("empty") == b""
    await check_invariants(store)


async def _text_chunks() -> AsyncIterator[str]:
    yield "text, "
    yield "not bytes"


async def _bytes_then_text() -> AsyncIterator[object]:
    yield b"x" * (CHUNK_SIZE + 10)
    yield "then text"


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda tmp: _write(tmp, b"some text").open("r", encoding="utf-8"), id="text-file"),
        pytest.param(lambda tmp: io.StringIO("text"), id="stringio"),
        pytest.param(lambda tmp: _text_chunks(), id="async-str"),
        pytest.param(lambda tmp: _bytes_then_text(), id="async-bytes-then-str"),
        pytest.param(lambda tmp: [b"a", b"b"], id="list-of-bytes"),
        pytest.param(lambda tmp: iter([b"a"]), id="sync-iterator"),
        pytest.param(lambda tmp: 42, id="int"),
        pytest.param(lambda tmp: {"a": b"b"}, id="dict"),
    ],
)
async def test_unusable_inputs_raise_invalid_input_and_store_nothing(
    store: BlobStore, tmp_path: Path, make: Callable[[Path], Any]
) -> None:
    """Text files, str chunks, sync iterables and other objects raise InvalidInput; nothing is stored or spooled."""
    argument = make(tmp_path)
    try:
        with pytest.raises(InvalidInput):
            await store.tenant("acme").put("k", argument)
    finally:
        if isinstance(argument, io.IOBase):
            argument.close()
    assert await rows(store, "SELECT name FROM tenants") == []
    assert await rows(store, "SELECT id FROM blobs") == []
    assert await data_objects(store) == []


async def test_a_missing_path_is_not_found(store: BlobStore, tmp_path: Path) -> None:
    """A Path that does not exist raises NotFound and stores nothing."""
    missing = tmp_path / "no-such-file.bin"
    with pytest.raises(NotFound):
        await store.tenant("acme").put("k", missing)
    assert await rows(store, "SELECT name FROM tenants") == []


async def test_a_directory_is_invalid_input(store: BlobStore, tmp_path: Path) -> None:
    """A directory path raises InvalidInput and stores nothing."""
    with pytest.raises(InvalidInput):
        await store.tenant("acme").put("k", tmp_path)
    assert await rows(store, "SELECT name FROM tenants") == []


@pytest.mark.parametrize("special", ["fifo", "device"])
async def test_special_files_are_invalid_input(store: BlobStore, tmp_path: Path, special: str) -> None:
    """A FIFO or a device path raises InvalidInput (never blocks or reads forever) and stores nothing."""
    if special == "fifo":
        path = tmp_path / "fifo"
        os.mkfifo(path)
    else:
        path = Path("/dev/zero")
    with pytest.raises(InvalidInput, match="not a regular file"):
        await store.tenant("acme").put("k", path)
    assert await rows(store, "SELECT name FROM tenants") == []


async def test_an_async_iterable_that_fails_midway_stores_nothing(store: BlobStore) -> None:
    """An error raised by the caller's async iterable propagates; no spool file, blob or object remains."""

    async def broken() -> AsyncIterator[bytes]:
        yield b"x" * (CHUNK_SIZE + 1)
        raise RuntimeError("producer died")

    with pytest.raises(RuntimeError, match="producer died"):
        await store.tenant("acme").put("k", broken())
    assert await rows(store, "SELECT id FROM blobs") == []
    assert await data_objects(store) == []


async def test_a_file_that_changes_during_put_is_not_stored(
    store: BlobStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the caller's file changes between hashing and upload, put raises IntegrityError and stores nothing.

    The file changes as its object is written (its frames were encoded from it just before)."""
    path = _write(tmp_path, b"original bytes")
    original_write = store.storage.write

    async def write_after_change(key: str, source: Source) -> None:
        if key.startswith("data/"):
            with path.open("ab") as file:
                file.write(b" and more")
        await original_write(key, source)

    monkeypatch.setattr(store.storage, "write", write_after_change)
    with pytest.raises(IntegrityError):
        await store.tenant("acme").put("k", path)
    monkeypatch.undo()
    assert not await store.tenant("acme").exists("k")
    assert await rows(store, "SELECT key FROM refs") == []
    await check_invariants(store)
    assert await data_objects(store) == []


async def test_the_callers_file_object_is_read_from_its_position(store: BlobStore) -> None:
    """A file object is read from its current position to its end."""
    file = io.BytesIO(b"skip:keep")
    file.seek(5)
    info = await store.tenant("acme").put("k", file)
    assert info.size == 4
    assert await store.tenant("acme").get("k") == b"keep"


@pytest.mark.parametrize("text", ["/etc/hostname", "hello", "relative/file.txt", ""])
async def test_a_str_is_never_read_as_a_server_side_path(store: BlobStore, tmp_path: Path, text: str) -> None:
    """A str (text a service may forward from a user) is refused with InvalidInput, even naming a real file."""
    existing = tmp_path / "server-secret.txt"
    existing.write_text("do not leak")
    for argument in (text, str(existing)):
        with pytest.raises(InvalidInput, match=r"pathlib\.Path"):
            await store.tenant("acme").put("k", argument)  # type: ignore[arg-type]
    assert not await store.tenant("acme").exists("k")
    assert await data_objects(store) == []
