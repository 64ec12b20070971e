"""Encoding a put's source into frames (blobstore.core.framing): where the stored object comes from."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from blobstore.core.framing import ENCODE_IN_MEMORY, encoded
from blobstore.storage.frames import FRAME_SIZE, Codec, decode_frame
from tests.frames.test_format import TEXT

LONG = ENCODE_IN_MEMORY + FRAME_SIZE + 123


def _source(data: bytes, kind: str, tmp_path: Path) -> bytes | Path:
    if kind == "bytes":
        return data
    path = tmp_path / "source"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("kind", ["bytes", "file"])
async def test_a_long_source_whose_frames_all_stay_raw_is_written_as_it_is(kind: str, tmp_path: Path) -> None:
    """Random data: no frame pays, so the stored object is the source itself, with no temporary copy."""
    source = _source(os.urandom(LONG), kind, tmp_path)
    async with encoded(source, 3) as (stored, index):
        assert stored is source
        assert {frame.codec for frame in index.frames} == {Codec.RAW}
        assert index.size == LONG


@pytest.mark.parametrize("kind", ["bytes", "file"])
async def test_a_long_source_with_compressed_frames_after_raw_ones_is_encoded_whole(kind: str, tmp_path: Path) -> None:
    """Raw frames first, compressed ones later: the temporary object holds the raw prefix then every frame,
    and decodes to the source; it is removed on leaving."""
    size = 12 * FRAME_SIZE + 5  # 3 random frames, 7 skipped, then the probe and the rest compress
    data = os.urandom(3 * FRAME_SIZE) + (TEXT * (size // len(TEXT) + 1))[: size - 3 * FRAME_SIZE]
    source = _source(data, kind, tmp_path)
    async with encoded(source, 3) as (stored, index):
        assert isinstance(stored, Path)
        assert stored != source
        spooled = stored.read_bytes()
        codecs = [frame.codec for frame in index.frames]
        assert codecs[:3] == [Codec.RAW] * 3
        assert Codec.ZSTD in codecs
        assert len(spooled) == index.stored_size < len(data)
        plain = b"".join(
            decode_frame(frame, spooled[frame.stored_offset : frame.stored_end], number)
            for number, frame in enumerate(index.frames)
        )
        assert plain == data
    assert not stored.exists()
