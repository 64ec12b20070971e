"""Shared fixtures: real PostgreSQL and S3 servers, a controllable clock, and stores over every deployment.

Servers are started (or found) once per session. When one is missing its
tests are skipped loudly, unless ``BLOBSTORE_REQUIRE_SERVERS=1`` (CI), where
a missing server fails the run instead.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import text

from blobstore import BlobStore, Settings
from blobstore.db import migrate
from blobstore.db.engine import Database
from blobstore.db.models import Base
from tests.support.live_server import TRANSPORTS, Connect, connector
from tests.support.s3_server import S3Endpoint, s3_endpoint, temporary_bucket
from tests.support.servers import ServerUnavailable, postgres_server, run_sync, scratch_database
from tests.support.stores import DEPLOYMENTS, TEST_SECRET_KEY, FakeClock, StoreFactory, unavailable


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``postgres`` every test that reaches PostgreSQL by a fixture or a parameter (a deployment), so
    ``-m postgres`` is the PostgreSQL suite (CI runs it once more through pgbouncer); tests that open a
    PostgreSQL store by name carry the mark themselves."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        fixtures = set(getattr(item, "fixturenames", ()))
        if (callspec and "postgres" in callspec.id) or {"postgres_url", "empty_postgres_url"} & fixtures:
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a migrated scratch database on a real PostgreSQL server, for the whole session."""
    try:
        with postgres_server() as admin_url, scratch_database(admin_url) as url:
            run_sync(_migrate(url))
            yield url
    except ServerUnavailable as exc:
        unavailable(str(exc))


@pytest.fixture
def empty_postgres_url() -> Iterator[str]:
    """A brand-new, unmigrated PostgreSQL database of this test's own, dropped afterwards."""
    try:
        with postgres_server() as admin_url, scratch_database(admin_url) as url:
            yield url
    except ServerUnavailable as exc:
        unavailable(str(exc))


async def _migrate(url: str) -> None:
    database = Database(url)
    try:
        await migrate.upgrade(database)
    finally:
        await database.dispose()


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Endpoint]:
    """A real S3 HTTP endpoint (moto's server unless the environment names one)."""
    try:
        with s3_endpoint() as endpoint:
            yield endpoint
    except Exception as exc:  # any failure to start the server is reported the same way
        unavailable(f"no S3 endpoint: {exc}")


@pytest.fixture(scope="session")
def s3_bucket(s3: S3Endpoint) -> Iterator[str]:
    """One bucket for the session; each store gets a prefix of its own inside it."""

    async def hold() -> None:
        async with temporary_bucket(s3) as name:
            created.set_result(name)
            await asyncio.wrap_future(release)

    created: Future[str] = Future()
    release: Future[None] = Future()
    with ThreadPoolExecutor(1) as pool:
        holder = pool.submit(asyncio.run, hold())
        yield created.result(timeout=60)
        release.set_result(None)
        holder.result()


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's headless Chromium (``.ci/run`` installs it; only a developer's machine may skip)."""
    path = Path("/usr/bin/chromium")
    if not path.exists():
        unavailable("no /usr/bin/chromium (Debian: apt-get install -y chromium)")
    return str(path)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def _truncate(url: str) -> None:
    database = Database(url)
    try:
        names = ", ".join(table.name for table in Base.metadata.sorted_tables)
        async with database.engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    finally:
        await database.dispose()


@pytest.fixture
def settings_for(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str], Awaitable[Settings]]:
    """Build clean settings for a deployment name (``sqlite-local``, ``postgres-s3``, ``sqlite-memory``)."""
    prefix = uuid.uuid4().hex[:12]

    async def build(deployment: str) -> Settings:
        home = tmp_path / "home"
        if deployment.startswith("postgres"):
            url = request.getfixturevalue("postgres_url")
            run_sync(_truncate(url))
        elif deployment.endswith("-memory"):
            url = "sqlite+aiosqlite:///:memory:"
        else:
            url = f"sqlite+aiosqlite:///{home / 'blobstore.db'}"
        if deployment.endswith("-s3"):
            endpoint: S3Endpoint = request.getfixturevalue("s3")
            bucket = request.getfixturevalue("s3_bucket")
            storage_url, endpoint_url = f"s3://{bucket}/{prefix}", endpoint.url
        elif deployment.endswith("-memory"):
            storage_url, endpoint_url = "memory://", None
        else:
            storage_url, endpoint_url = (home / "blobs").as_uri(), None
        # The secret every server of a non-SQLite store shares (BLOBSTORE_SECRET_KEY) to sign URLs.
        secret = TEST_SECRET_KEY if deployment.startswith("postgres") else None
        return Settings(
            home=home, database_url=url, storage_url=storage_url, s3_endpoint_url=endpoint_url, secret_key=secret
        )

    return build


@pytest.fixture
async def open_store(
    settings_for: Callable[[str], Awaitable[Settings]], clock: FakeClock
) -> AsyncIterator[StoreFactory]:
    """Open stores on a deployment; every store opened here is closed after the test.

    Stores opened on the same deployment in one test share its database and storage,
    like several processes of one deployment do.
    """
    opened: list[BlobStore] = []
    prepared: dict[str, Settings] = {}

    async def factory(deployment: str, **overrides: object) -> BlobStore:
        if deployment not in prepared:
            prepared[deployment] = await settings_for(deployment)
        store = await BlobStore.open(replace(prepared[deployment], **overrides), clock=clock, migrate_schema=True)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        await store.close()


@pytest.fixture(params=TRANSPORTS)
async def connect(request: pytest.FixtureRequest, clock: FakeClock) -> AsyncIterator[Connect]:
    """Tenants in-process (``Tenant``) and over a real HTTP server (``BlobClient``), in turn."""
    async with connector(request.param, clock) as connect:
        yield connect


@pytest.fixture(params=DEPLOYMENTS)
def deployment(request: pytest.FixtureRequest) -> str:
    """Each deployment in turn."""
    return str(request.param)


@pytest.fixture
async def store(open_store: StoreFactory, deployment: str) -> BlobStore:
    """An empty store on each deployment in turn."""
    return await open_store(deployment)
