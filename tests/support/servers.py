"""The PostgreSQL server the tests use: one named by the environment, a container, or the local one.

In order: ``BLOBSTORE_TEST_DATABASE_URL`` (any reachable PostgreSQL),
a testcontainers PostgreSQL when ``BLOBSTORE_TEST_USE_DOCKER=1``, else the
local server at ``postgresql://postgres@127.0.0.1:5432/test``. Each test
session works in a database of its own, created here and dropped afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from sqlalchemy.engine import make_url

T = TypeVar("T")

LOCAL_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion on a fresh loop in another thread (works inside a running loop too)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


class ServerUnavailable(Exception):
    """The server could not be reached; the message says which one and why."""


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield an admin SQLAlchemy URL of a reachable PostgreSQL server."""
    if url := os.environ.get("BLOBSTORE_TEST_DATABASE_URL"):
        yield url
    elif os.environ.get("BLOBSTORE_TEST_USE_DOCKER") == "1":
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16-alpine", driver="asyncpg") as container:
            yield container.get_connection_url()
    else:
        yield LOCAL_POSTGRES


def plain_postgres_url(url: str) -> str:
    """A SQLAlchemy asyncpg URL as the libpq URL asyncpg itself takes (without blobstore's ``?pooler=``,
    which asyncpg would send the server as a setting)."""
    parsed = make_url(url).set(drivername="postgresql").difference_update_query(["pooler"])
    return parsed.render_as_string(hide_password=False)


@contextmanager
def scratch_database(admin_url: str) -> Iterator[str]:
    """Create a uniquely named database on the server, yield its URL, and drop it afterwards."""
    url = make_url(admin_url).set(drivername="postgresql+asyncpg")
    name = f"blobstore_test_{uuid.uuid4().hex[:12]}"
    plain = plain_postgres_url(admin_url)

    async def admin(sql: str) -> None:
        try:
            conn = await asyncpg.connect(plain, timeout=10)
        except (OSError, asyncpg.PostgresError) as exc:
            raise ServerUnavailable(f"PostgreSQL at {url.host}:{url.port} is unreachable: {exc}") from exc
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    run_sync(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        run_sync(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


class ThrowawayPostgres:
    """A PostgreSQL cluster of a test's own (Debian's binaries), to stop and start under a running store.

    Runs as the ``postgres`` user when the tests run as root (PostgreSQL refuses root).
    """

    def __init__(self) -> None:
        bins = sorted(Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin"))  # noqa: PTH207
        if not bins:
            raise ServerUnavailable("no PostgreSQL binaries under /usr/lib/postgresql/*/bin")
        self.bin = bins[-1]
        self.directory = Path(tempfile.mkdtemp(prefix="blobstore-pg-"))
        self.data = self.directory / "data"
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
        if done.returncode != 0:
            raise ServerUnavailable(f"{tool} failed: {done.stderr.strip()[-500:]}")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.directory / "log"), "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        """Stop the cluster if it runs, and delete it."""
        with contextlib.suppress(ServerUnavailable):
            self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)
