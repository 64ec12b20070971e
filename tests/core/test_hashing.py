"""Hashing a stream in worker threads (blobstore.core.hashing): the bytes pass unchanged, regrouped into
blocks, and every hasher sees all of them, in order."""

from __future__ import annotations

import hashlib
import os
import zlib
from collections.abc import AsyncIterator

import pytest

from blobstore.core.hashing import HASH_BLOCK, hashed_in_threads
from blobstore.model import checksums


async def pieces(data: bytes, size: int) -> AsyncIterator[bytes | bytearray]:
    for at in range(0, len(data), size):
        yield bytearray(data[at : at + size]) if at % 2 else data[at : at + size]
        yield b""


@pytest.mark.parametrize("length", [0, 1, 70_000, HASH_BLOCK - 1, HASH_BLOCK, 3 * HASH_BLOCK + 12_345])
@pytest.mark.parametrize("piece", [1000, 65_536, 5 * HASH_BLOCK])
async def test_the_bytes_pass_in_blocks_and_every_hasher_sees_them_all(length: int, piece: int) -> None:
    data = os.urandom(length)
    md5, sha256, crc = hashlib.md5(usedforsecurity=False), hashlib.sha256(), checksums.hasher("crc32")
    blocks = [block async for block in hashed_in_threads(pieces(data, piece), [md5, sha256, crc])]
    assert b"".join(blocks) == data
    assert all(isinstance(block, bytes) and block for block in blocks)
    assert all(len(block) >= HASH_BLOCK for block in blocks[:-1])
    assert md5.digest() == hashlib.md5(data, usedforsecurity=False).digest()
    assert sha256.digest() == hashlib.sha256(data).digest()
    assert crc.digest() == zlib.crc32(data).to_bytes(4, "big")


async def test_a_caller_that_stops_early_leaves_no_hashing_running() -> None:
    data = os.urandom(4 * HASH_BLOCK)
    sha256 = hashlib.sha256()
    stream = hashed_in_threads(pieces(data, HASH_BLOCK), [sha256])
    first = await anext(stream)
    await stream.aclose()
    assert sha256.digest() == hashlib.sha256(first).digest()
