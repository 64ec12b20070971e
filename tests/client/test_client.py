"""BlobClient beyond the shared semantics suite: its inputs, its probes and how it reports auth and transport errors."""

from __future__ import annotations

import io
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from blobstore import BlobStore, Forbidden, InvalidInput, NotFound, StorageUnavailable, Unauthorized
from blobstore.auth import tokens
from blobstore.client import BlobClient
from tests.support.live_server import serving
from tests.support.stores import FakeClock


@pytest.fixture
async def url(store: BlobStore, clock: FakeClock) -> AsyncIterator[str]:
    with serving(store.settings, clock=clock) as base_url:
        yield base_url


async def client_for(store: BlobStore, url: str, *scopes: str) -> BlobClient:
    return BlobClient(url, (await tokens.create(store.core, "acme", scopes=scopes or tokens.SCOPES)).token)


async def test_puts_paths_files_and_async_iterables(store: BlobStore, url: str, tmp_path: Path) -> None:
    """A pathlib.Path, binary files and an async iterable stream to the server; a str, a missing file, a directory
    or another type are refused like Tenant.put refuses them."""
    source = tmp_path / "source.bin"
    source.write_bytes(b"from a file" * 100_000)

    async def chunks() -> AsyncIterator[bytes]:
        yield b"async "
        yield b"chunks"

    async with await client_for(store, url) as acme:
        assert (await acme.put("path", source)).size == source.stat().st_size
        with source.open("rb") as file:
            assert (await acme.put("file", file)).digest == (await acme.stat("path")).digest
        assert (await acme.put("iter", chunks())).size == 12
        assert (await acme.put("memory", io.BytesIO(b"in memory"))).size == 9
        assert await acme.get("iter") == b"async chunks"
        assert await acme.get("path") == source.read_bytes()
        with pytest.raises(InvalidInput):
            await acme.put("str", str(source))  # type: ignore[arg-type]
        with pytest.raises(NotFound):
            await acme.put("gone", tmp_path / "missing.bin")
        with pytest.raises(InvalidInput):
            await acme.put("dir", tmp_path)
        with pytest.raises(InvalidInput):
            await acme.put("bad", 42)
    assert await store.tenant("acme").get("file") == source.read_bytes()
    assert not await store.tenant("acme").exists("str")


async def test_missing_and_usage(store: BlobStore, url: str) -> None:
    """missing() names the digests this tenant lacks; usage() its own keys and bytes."""
    held = await store.tenant("acme").put("k", b"held")
    foreign = await store.tenant("other").put("k", b"foreign")
    async with await client_for(store, url, "read") as acme:
        assert await acme.missing([held.digest, foreign.digest]) == [foreign.digest]
        usage = await acme.usage()
        assert (usage.tenant, usage.objects, usage.logical_bytes) == ("acme", 1, 4)


async def test_auth_errors_map_to_their_classes(store: BlobStore, url: str) -> None:
    """A read-only token's put raises Forbidden; a revoked token's read raises Unauthorized (a PermissionError)."""
    async with await client_for(store, url, "read") as reader:
        with pytest.raises(Forbidden):
            await reader.put("k", b"x")
        token_id = (await tokens.list_tokens(store.core, "acme"))[0].id
        await tokens.revoke(store.core, token_id)
        with pytest.raises(Unauthorized):
            await reader.list()
        with pytest.raises(PermissionError):
            await reader.stat("k")  # a HEAD: the code comes from the X-Blobstore-Error header


async def test_an_unreachable_server_is_storage_unavailable(store: BlobStore) -> None:
    """Nothing listening at the URL: StorageUnavailable, which says retrying can help."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    token = (await tokens.create(store.core, "acme")).token
    async with BlobClient(f"http://127.0.0.1:{port}", token) as acme:
        with pytest.raises(StorageUnavailable) as caught:
            await acme.get("k")
    assert caught.value.retryable


def test_a_malformed_token_is_refused_up_front() -> None:
    """The client reads its tenant from the token, so a malformed one fails before any request."""
    with pytest.raises(Unauthorized):
        BlobClient("http://127.0.0.1:1", "not-a-token")
