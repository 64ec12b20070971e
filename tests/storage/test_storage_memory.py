"""MemoryStorage passes the conformance suite."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from blobstore.errors import ConfigurationError
from blobstore.storage import MemoryStorage, ObjectStorage, open_storage_from_url, read_all
from blobstore.testing.storage_suite import StorageConformance


class TestMemoryStorage(StorageConformance):
    @pytest.fixture
    async def storage(self) -> AsyncIterator[ObjectStorage]:
        async with MemoryStorage() as storage:
            yield storage


async def test_instances_are_independent() -> None:
    """An object written to one MemoryStorage is absent from another."""
    first, second = MemoryStorage(), MemoryStorage()
    await first.write("k", b"v")
    assert await second.stat("k") is None
    assert await read_all(first, "k") == b"v"


def test_memory_url() -> None:
    """memory:// opens a fresh MemoryStorage."""
    storage = open_storage_from_url("memory://", endpoint_url=None, region="us-east-1")
    assert isinstance(storage, MemoryStorage)
    assert storage.url == "memory://"


@pytest.mark.parametrize("url", ["memory://x", "memory:///x", "memory://?a=1"])
def test_bad_memory_urls(url: str) -> None:
    """Anything after memory:// is a ConfigurationError naming BLOBSTORE_STORAGE_URL."""
    with pytest.raises(ConfigurationError, match="BLOBSTORE_STORAGE_URL"):
        open_storage_from_url(url, endpoint_url=None, region="us-east-1")


def test_unknown_scheme() -> None:
    """An unknown scheme gets one sentence naming the variable, the scheme and the accepted ones."""
    with pytest.raises(ConfigurationError) as raised:
        open_storage_from_url("ftp://x", endpoint_url=None, region="us-east-1")
    assert str(raised.value) == (
        "BLOBSTORE_STORAGE_URL: unknown scheme 'ftp' in 'ftp://x'; use file://, s3:// or memory://"
    )
