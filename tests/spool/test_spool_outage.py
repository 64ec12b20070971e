"""The real outage (issue 22): two ``blobstore serve`` processes (nodes a and b, spools of their own, one
PostgreSQL catalog) take a load of puts over HTTP while the S3 server (moto's, a server of this test's own)
is stopped mid-load, kept down, and started again. Every acknowledged put reads back exactly, from either
node once drained; every blob is in the bucket after the servers' drainers ran; fsck is clean.

moto keeps its buckets in this process, so a server stopped and started again on the same port serves the
same bucket, as a real S3 endpoint does after an outage.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from blobstore.auth import tokens
from blobstore.client import BlobClient
from blobstore.core.spool import DRAIN_LOCK
from tests.support.live_server import Served, free_port, serve_process
from tests.support.s3_server import s3_endpoint_from_env
from tests.support.stores import TEST_SECRET_KEY, FakeClock, StoreFactory
from tests.support.workers import invariant_violations, rows

pytestmark = [pytest.mark.s3, pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(900)]

MiB = 1024 * 1024
PUTS = 36
#: Puts acknowledged before the outage begins.
BEFORE = 8
CONCURRENCY = 6


class MotoServer:
    """moto's S3 server on a fixed loopback port, stopped and started again at will."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: object = None

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        server.start()
        self._server = server

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()  # type: ignore[attr-defined]
            self._server = None


@pytest.fixture
def moto(s3: object) -> Iterator[MotoServer]:
    """A moto S3 server of this test's own, over the buckets of the suite's (its moto runs in this process)."""
    if s3_endpoint_from_env() is not None:
        pytest.skip("needs the suite's own moto server (S3 endpoint from the environment)")
    server = MotoServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def payloads() -> dict[str, bytes]:
    """PUTS values: mostly small, some above 1 MiB (streamed puts the server stages), a few shared."""
    rng = random.Random(2222)
    values: dict[str, bytes] = {}
    for n in range(PUTS):
        if n % 9 == 4:
            values[f"k{n:03d}"] = values[f"k{n - 1:03d}"]  # the same bytes again: a dedup hit
        elif n % 7 == 3:
            values[f"k{n:03d}"] = rng.randbytes(2 * MiB + n)
        else:
            values[f"k{n:03d}"] = rng.randbytes(rng.randrange(1, 200_000))
    return values


async def wait_until(condition: object, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not await condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


async def test_puts_through_an_s3_outage_on_two_nodes_are_kept_drained_and_read_back(
    open_store: StoreFactory, moto: MotoServer, tmp_path: Path, clock: FakeClock
) -> None:
    store = await open_store("postgres-s3", s3_endpoint_url=moto.url)
    token = (await tokens.create(store.core, "acme", scopes=tokens.SCOPES)).token
    settings = store.settings

    def env(name: str) -> dict[str, str | None]:
        return {
            "BLOBSTORE_DATABASE_URL": settings.database_url,
            "BLOBSTORE_STORAGE_URL": settings.storage_url,
            "BLOBSTORE_S3_ENDPOINT_URL": moto.url,
            "BLOBSTORE_SECRET_KEY": TEST_SECRET_KEY,
            "BLOBSTORE_SPOOL_DIR": str(tmp_path / f"spool-{name}"),
            "BLOBSTORE_SPOOL_MAX_BYTES": str(200 * MiB),
            "BLOBSTORE_NODE_ID": name,
            "BLOBSTORE_SPOOL_DRAIN_INTERVAL": "1",
        }

    values = payloads()
    acknowledged: dict[str, bytes] = {}
    failed: dict[str, str] = {}
    with ExitStack() as stack:
        servers: dict[str, Served] = {
            name: stack.enter_context(serve_process(tmp_path / name, env=env(name))) for name in ("a", "b")
        }
        clients = {name: BlobClient(served.url, token, timeout=300) for name, served in servers.items()}
        queue: asyncio.Queue[str] = asyncio.Queue()
        for key in values:
            queue.put_nowait(key)
        outage = asyncio.Event()

        async def worker(name: str) -> None:
            while not queue.empty():
                key = queue.get_nowait()
                try:
                    await clients[name].put(key, values[key])
                except Exception as exc:  # an answer that is not an acknowledgement: not counted as stored
                    failed[key] = repr(exc)
                else:
                    acknowledged[key] = values[key]
                if len(acknowledged) >= BEFORE and not outage.is_set():
                    outage.set()
                    moto.stop()  # mid-load: other puts are in flight

        await asyncio.gather(*(worker(name) for name in ("a", "b") for _ in range(CONCURRENCY // 2)))
        assert outage.is_set()
        assert failed == {}, failed
        # Kept down: both nodes hold spooled blobs and say so; each reads its own, the other answers 503.
        spooled = {node.node_id: node.blobs for node in await store.spool_status()}
        assert set(spooled) == {"a", "b"}, spooled
        for served in servers.values():  # readyz waits out the storage check's retries
            async with httpx.AsyncClient(timeout=300) as http:
                ready = await http.get(f"{served.url}/readyz")
            assert (ready.status_code, ready.json()["status"]) == (200, "degraded: spooling")
        where = dict(
            await rows(
                store,
                "SELECT r.key, b.spooled_on FROM refs r JOIN blobs b ON b.id = r.blob_id "
                "WHERE b.spooled_on IS NOT NULL",
            )
        )
        for key, node_id in where.items():
            assert await clients[node_id].get(key) == values[key]
        for node_id in ("a", "b"):  # one each: every refusal waits out S3's retries
            key = next(key for key, holder in where.items() if holder == node_id)
            other = "b" if node_id == "a" else "a"
            refused = await clients[other]._http.get(f"/v1/tenants/acme/objects/{key}")
            assert refused.status_code == 503
            assert "retry-after" in refused.headers

        moto.start()  # the outage ends: the servers' drainers move every spooled blob into the bucket

        async def drained() -> bool:
            return await store.spool_status() == []

        await wait_until(drained, 180, "the drainers to empty both spools")
        for client in clients.values():
            for key, data in acknowledged.items():
                assert await client.get(key) == data
        for client in clients.values():
            await client.aclose()
    assert sorted(acknowledged) == sorted(values)
    object_keys = [key for (key,) in await rows(store, "SELECT object_key FROM blobs WHERE state = 'live'")]
    assert all([await store.storage.stat(key) is not None for key in object_keys])
    clock.advance_past_real_time(settings.gc_grace_seconds + settings.upload_lease_seconds + 1)
    for name in ("a", "b"):  # each node's GC removes its spool files of puts that deduplicated meanwhile
        spooled_here = {"spool_dir": tmp_path / f"spool-{name}", "spool_max_bytes": MiB, "node_id": name}
        await (await open_store("postgres-s3", s3_endpoint_url=moto.url, **spooled_here)).gc()
        left = [p.name for p in (tmp_path / f"spool-{name}").rglob("*") if p.is_file() and ".tmp" not in p.parts]
        assert left == [DRAIN_LOCK]  # nothing but the drains' lock file
    assert await invariant_violations(store) == []
    report = await store.fsck(read_data=True)
    assert report.ok, report.problems
