"""The frame format (blobstore.storage.frames): cutting, compressing, indexing and verifying frames."""

from __future__ import annotations

import os

import pytest

from blobstore.errors import IntegrityError
from blobstore.storage.frames import (
    FRAME_SIZE,
    PROBE_EVERY,
    SKIP_AFTER_MISSES,
    Codec,
    FrameEncoder,
    FrameIndex,
    decode_frame,
    should_compress,
)

TEXT = b"".join(b'{"line": %d, "level": "info", "message": "request served"}\n' % n for n in range(60_000))


def encoded(data: bytes, level: int | None = 3, pieces: int = 7) -> tuple[bytes, FrameIndex]:
    """``data`` encoded, fed in ``pieces`` uneven pieces."""
    encoder = FrameEncoder(level)
    step = max(1, len(data) // pieces + 13)
    stored = b"".join(encoder.feed(data[at : at + step]) for at in range(0, len(data), step)) + encoder.finish()
    return stored, encoder.index


def decoded(stored: bytes, index: FrameIndex) -> bytes:
    return b"".join(
        decode_frame(frame, stored[frame.stored_offset : frame.stored_end], number)
        for number, frame in enumerate(index.frames)
    )


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, FRAME_SIZE - 1, FRAME_SIZE, FRAME_SIZE + 1, 3 * FRAME_SIZE + 12345])
@pytest.mark.parametrize("kind", ["text", "random"])
def test_round_trip_of_every_size_class(size: int, kind: str) -> None:
    data = (TEXT * (size // len(TEXT) + 1))[:size] if kind == "text" else os.urandom(size)
    stored, index = encoded(data)
    assert decoded(stored, index) == data
    assert index.size == size
    assert index.stored_size == len(stored)
    assert len(index.frames) == -(-size // FRAME_SIZE)
    assert FrameIndex.decode(index.encode()) == index


def test_compressible_frames_are_compressed_and_random_ones_kept_raw() -> None:
    data = TEXT[:FRAME_SIZE] + os.urandom(FRAME_SIZE)
    stored, index = encoded(data)
    assert [frame.codec for frame in index.frames] == [Codec.ZSTD, Codec.RAW]
    assert index.frames[0].stored_size < FRAME_SIZE // 3
    assert stored[index.frames[1].stored_offset :] == data[FRAME_SIZE:]


def test_after_frames_that_do_not_pay_later_frames_are_stored_raw_untried_except_probes() -> None:
    # Random frames first, then text: the text frames skipped are stored raw although they would compress,
    # which shows they were not tried; the probe compresses, and compressing resumes for every frame after it.
    frame_size = 64 * 1024
    frames = SKIP_AFTER_MISSES + PROBE_EVERY + 3
    data = os.urandom(SKIP_AFTER_MISSES * frame_size) + TEXT[: (frames - SKIP_AFTER_MISSES) * frame_size]
    encoder = FrameEncoder(3, frame_size=frame_size)
    stored = encoder.feed(data) + encoder.finish()
    codecs = [frame.codec for frame in encoder.index.frames]
    tried_again = SKIP_AFTER_MISSES + PROBE_EVERY - 1
    assert codecs == [Codec.RAW] * tried_again + [Codec.ZSTD] * (frames - tried_again)
    assert decoded(stored, encoder.index) == data


def test_a_blob_under_4_kib_and_level_none_are_stored_raw() -> None:
    small = b"a" * 4095
    assert encoded(small)[0] == small
    assert encoded(small + b"a")[1].frames[0].codec is Codec.ZSTD
    stored, index = encoded(TEXT[: 2 * FRAME_SIZE], level=None)
    assert stored == TEXT[: 2 * FRAME_SIZE]
    assert {frame.codec for frame in index.frames} == {Codec.RAW}


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        (None, True),
        ("text/csv", True),
        ("application/json; charset=utf-8", True),
        ("image/JPEG", False),
        ("image/png", False),
        ("video/mp4", False),
        ("application/zip", False),
        ("application/gzip ; x=y", False),
        ("application/zstd", False),
    ],
)
def test_already_compressed_content_types_skip_the_attempt(content_type: str | None, expected: bool) -> None:
    assert should_compress(content_type) is expected


def test_overlapping_finds_the_frames_of_a_range_by_their_offsets() -> None:
    _, index = encoded(TEXT[: 3 * FRAME_SIZE + 10])
    assert index.overlapping(0, 0) == (0, 1)
    assert index.overlapping(FRAME_SIZE - 1, FRAME_SIZE) == (0, 2)
    assert index.overlapping(FRAME_SIZE, 2 * FRAME_SIZE - 1) == (1, 2)
    assert index.overlapping(5, 3 * FRAME_SIZE + 9) == (0, 4)
    assert index.overlapping(3 * FRAME_SIZE + 9, 3 * FRAME_SIZE + 9) == (3, 4)
    assert index.overlapping(3 * FRAME_SIZE + 10, 4 * FRAME_SIZE) == (4, 4)


def test_frames_of_other_lengths_are_found_by_offset() -> None:
    """Frames are placed by their offsets, so frames of uneven lengths (content-defined chunks) fit."""
    encoder = FrameEncoder(3, frame_size=1000)
    stored = encoder.feed(TEXT[:2500]) + encoder.finish()
    short = FrameEncoder(3, frame_size=300)
    tail = short.feed(TEXT[2500:2800]) + short.finish()
    frames = encoder.index.frames + tuple(
        type(frame)(
            frame.offset + 2500,
            frame.size,
            frame.stored_offset + len(stored),
            frame.stored_size,
            frame.codec,
            frame.digest,
        )
        for frame in short.index.frames
    )
    index = FrameIndex(frames)
    index.check()
    assert index.overlapping(2600, 2700) == (3, 4)
    assert decoded(stored + tail, index) == TEXT[:2800]


@pytest.mark.parametrize("codec", [Codec.ZSTD, Codec.RAW])
def test_a_flipped_byte_in_a_frame_is_an_integrity_error_naming_it(codec: Codec) -> None:
    data = TEXT[: 2 * FRAME_SIZE] if codec is Codec.ZSTD else os.urandom(2 * FRAME_SIZE)
    stored, index = encoded(data)
    second = index.frames[1]
    assert second.codec is codec
    for at in (second.stored_offset, second.stored_offset + second.stored_size // 2, second.stored_end - 1):
        damaged = bytearray(stored[second.stored_offset : second.stored_end])
        damaged[at - second.stored_offset] ^= 0x01
        with pytest.raises(IntegrityError, match=f"frame 1 \\(bytes {FRAME_SIZE}-{2 * FRAME_SIZE - 1}\\)"):
            decode_frame(second, bytes(damaged), 1)
    assert decode_frame(index.frames[0], stored[: index.frames[0].stored_end], 0) == data[:FRAME_SIZE]


def test_stored_bytes_of_the_wrong_length_are_an_integrity_error() -> None:
    stored, index = encoded(TEXT[:10_000])
    with pytest.raises(IntegrityError, match="frame 0"):
        decode_frame(index.frames[0], stored[:-1], 0)


@pytest.mark.parametrize("damage", [b"", b"\x02\x00\x00\x00\x00", b"\x01\x01\x00\x00\x00" + b"\x00" * 57])
def test_an_unreadable_or_inconsistent_index_is_an_integrity_error(damage: bytes) -> None:
    with pytest.raises(IntegrityError, match="frame index"):
        FrameIndex.decode(damage)


def test_the_encoded_index_is_compact() -> None:
    _, index = encoded(TEXT[: 2 * FRAME_SIZE])
    assert len(index.encode()) <= 5 + 57 * 2
