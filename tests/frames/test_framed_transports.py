"""Ranged reads of framed blobs over HTTP and the S3 API go through the same verified path as the library's."""

from __future__ import annotations

import os
from collections.abc import Iterator

import boto3
import pytest
from botocore.exceptions import ClientError

from blobstore import BlobStore, IntegrityError
from blobstore.auth import access_keys
from blobstore.s3 import create_app
from blobstore.storage import read_all
from blobstore.storage.frames import FRAME_SIZE
from tests.frames.test_framed_blobs import flip, frames_of, text_of
from tests.support.live_server import Connect, serving_app
from tests.support.stores import FakeClock
from tests.support.workers import object_key_of

DATA = text_of(FRAME_SIZE) + os.urandom(FRAME_SIZE) + text_of(FRAME_SIZE + 500)
#: Inclusive ranges, and the frames each touches.
RANGES = [
    ((0, 0), {0}),
    ((FRAME_SIZE - 3, FRAME_SIZE + 3), {0, 1}),
    ((FRAME_SIZE + 10, 2 * FRAME_SIZE - 1), {1}),
    ((2 * FRAME_SIZE, 3 * FRAME_SIZE + 499), {2, 3}),
    ((3 * FRAME_SIZE + 499, 3 * FRAME_SIZE + 499), {3}),
]


async def test_ranges_over_every_transport_are_exact_and_verified(store: BlobStore, connect: Connect) -> None:
    """Through the library and a real HTTP server: each range is the plaintext slice; with frame 1 corrupted,
    a range touching it fails with IntegrityError and the others still succeed."""
    handle = await connect(store, "acme")
    await handle.put("k", DATA)
    for (first, last), _ in RANGES:
        async with handle.open("k", (first, last)) as stream:
            assert await stream.read() == DATA[first : last + 1]
    object_key = await object_key_of(store, "acme", "k")
    damaged = (await frames_of(store, "acme", "k")).frames[1]
    await flip(store, object_key, await read_all(store.storage, object_key), damaged.stored_offset + 100)
    for (first, last), touched in RANGES:
        if 1 in touched:
            with pytest.raises(IntegrityError):
                async with handle.open("k", (first, last)) as stream:
                    await stream.read()
        else:
            async with handle.open("k", (first, last)) as stream:
                assert await stream.read() == DATA[first : last + 1]


@pytest.fixture
def s3_url(store: BlobStore, clock: FakeClock) -> Iterator[str]:
    """The S3 API over the store's deployment, on the test's clock."""
    with serving_app(create_app(settings=store.settings, clock=clock)) as served:
        yield served


async def test_s3_range_requests_are_exact_and_verified(store: BlobStore, s3_url: str) -> None:
    """GetObject with a Range gives the plaintext slice of a compressed object; a range touching a corrupt
    frame is refused, one beside it is served."""
    key = await access_keys.create(store.core, "acme")
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_url,
        aws_access_key_id=key.info.id,
        aws_secret_access_key=key.secret,
        region_name="us-east-1",
    )
    s3.create_bucket(Bucket="frames")
    s3.put_object(Bucket="frames", Key="k", Body=DATA)
    for (first, last), _ in RANGES:
        got = s3.get_object(Bucket="frames", Key="k", Range=f"bytes={first}-{last}")
        assert got["Body"].read() == DATA[first : last + 1]
    suffix = s3.get_object(Bucket="frames", Key="k", Range="bytes=-700")
    assert suffix["Body"].read() == DATA[-700:]
    object_key = await object_key_of(store, "acme", "frames/k")
    damaged = (await frames_of(store, "acme", "frames/k")).frames[1]
    await flip(store, object_key, await read_all(store.storage, object_key), damaged.stored_offset + 100)
    with pytest.raises(ClientError) as raised:
        s3.get_object(Bucket="frames", Key="k", Range=f"bytes={FRAME_SIZE + 10}-{FRAME_SIZE + 20}")
    assert raised.value.response["Error"]["Code"] == "BadDigest"  # IntegrityError in the one error table
    got = s3.get_object(Bucket="frames", Key="k", Range=f"bytes={2 * FRAME_SIZE}-{2 * FRAME_SIZE + 9}")
    assert got["Body"].read() == DATA[2 * FRAME_SIZE : 2 * FRAME_SIZE + 10]
