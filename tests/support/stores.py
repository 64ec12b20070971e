"""What the store-level tests share: the deployments, a clock moved by hand, and how a missing server is told."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest

from blobstore import BlobStore

REQUIRE_SERVERS = os.environ.get("BLOBSTORE_REQUIRE_SERVERS") == "1"

#: BLOBSTORE_SECRET_KEY of the PostgreSQL test stores.
TEST_SECRET_KEY = "test-secret-key-shared-by-every-server-of-the-store"

#: The deployments every store-level test runs against.
DEPLOYMENTS = ["sqlite-local", "postgres-s3"]


def unavailable(reason: str) -> None:
    """Skip the test for a missing server, or fail it under ``BLOBSTORE_REQUIRE_SERVERS=1`` (CI)."""
    if REQUIRE_SERVERS:
        pytest.fail(f"{reason} (BLOBSTORE_REQUIRE_SERVERS=1 makes this an error)", pytrace=False)
    pytest.skip(reason)


class FakeClock:
    """A clock the tests move by hand; starts at the real time."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def advance_past_real_time(self, seconds: float) -> None:
        """Move ``seconds`` past the later of this clock and the real time: past what storage stamped with
        the real time (an object's modification time) however slowly the machine got here."""
        self.now = max(self.now, datetime.now(UTC)) + timedelta(seconds=seconds)


#: Opens a store on a deployment (the ``open_store`` fixture).
StoreFactory = Callable[..., Awaitable[BlobStore]]
