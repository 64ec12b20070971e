"""What the S3 API tests share: the app served over each test's store."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from blobstore import BlobStore
from blobstore.s3 import create_app
from tests.support.live_server import serving_app
from tests.support.stores import FakeClock


@pytest.fixture
def url(store: BlobStore, clock: FakeClock) -> Iterator[str]:
    """The S3 app over the test's store's deployment (a store of its own, as a server process has), on the
    test's clock."""
    with serving_app(create_app(settings=store.settings, clock=clock)) as served:
        yield served
