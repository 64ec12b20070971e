"""The service under load: many concurrent clients doing mixed PUT/GET/LIST/DELETE against several
``blobstore serve`` processes that share one database and bucket, with GC running, then an audit.

Each client owns a key space (``c<i>/k<j>``) and remembers what the servers acknowledged for each of its
keys, so every answer can be checked as it comes (a GET must return the last acknowledged bytes, a LIST
exactly the live keys) and, at the end, every acknowledged write must still be there. Half the uploads
reuse a small pool of payloads, so clients dedup against each other while GC reclaims what they delete.
Bounded in time and in operations; loopback only.

    python -m benchmarks --only H4 [--full]                         # a row per operation in the table
    python -m benchmarks.http_load --clients 64 --seconds 180     # PostgreSQL on 127.0.0.1 + moto S3
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx

from benchmarks.deployments import postgres_database, s3_bucket
from benchmarks.harness import Context, Row, Target, phase, unmeasured
from blobstore import BlobStore, Settings
from blobstore.auth import tokens
from blobstore.core.ingest import new_hasher
from tests.support.servers import LOCAL_POSTGRES

OPERATIONS = ("PUT", "GET", "LIST", "DELETE")
_WEIGHTS = (4, 3, 1.5, 1.5)


@dataclass(frozen=True)
class Workload:
    """How hard and how long: ``clients`` concurrent clients for at most ``seconds`` or ``max_ops`` operations."""

    clients: int = 64
    seconds: float = 180.0
    max_ops: int = 1_000_000
    keys_per_client: int = 16
    max_size: int = 64 * 1024
    shared_payloads: int = 32
    gc_every: float = 1.0
    seed: int = 1


@dataclass
class Report:
    """What the load did and found: latencies per operation, errors, and anything that broke a guarantee."""

    seconds: float = 0.0
    latencies: dict[str, list[float]] = field(default_factory=lambda: {op: [] for op in OPERATIONS})
    server_errors: list[str] = field(default_factory=list)
    anomalies: list[str] = field(default_factory=list)
    gc_runs: int = 0
    gc_reclaimed: int = 0
    audited_keys: int = 0
    lost_writes: list[str] = field(default_factory=list)

    def operations(self) -> dict[str, dict[str, float]]:
        """Per operation: count, throughput, and p50/p99 latency (ms)."""
        per_op = {}
        for op, samples in self.latencies.items():
            cuts = statistics.quantiles(samples, n=100) if len(samples) >= 2 else [0.0] * 99
            per_op[op] = {
                "count": len(samples),
                "per_second": round(len(samples) / self.seconds, 1) if self.seconds else 0.0,
                "p50_ms": round(cuts[49] * 1000, 1),
                "p99_ms": round(cuts[98] * 1000, 1),
            }
        return per_op

    def summary(self) -> dict[str, object]:
        """:meth:`operations`, and the counts that must be zero."""
        return {
            "seconds": round(self.seconds, 1),
            "operations": self.operations(),
            "server_errors": len(self.server_errors),
            "anomalies": len(self.anomalies),
            "lost_writes": len(self.lost_writes),
            "audited_keys": self.audited_keys,
            "gc_runs": self.gc_runs,
            "gc_reclaimed_objects": self.gc_reclaimed,
        }


def digest_of(data: bytes) -> str:
    hasher = new_hasher()
    hasher.update(data)
    return str(hasher.hexdigest())


class _Client:
    """One client: its key space, what the servers acknowledged for it, and the checks on every answer."""

    def __init__(self, index: int, http: httpx.AsyncClient, workload: Workload, report: Report) -> None:
        self.prefix = f"c{index}/"
        self.http = http
        self.workload = workload
        self.report = report
        self.random = random.Random(workload.seed * 1_000_003 + index)
        self.acknowledged: dict[str, str | None] = {}  # key -> digest of its last acknowledged PUT, None: deleted

    async def step(self, shared: Sequence[bytes]) -> None:
        op = self.random.choices(OPERATIONS, _WEIGHTS)[0]
        key = f"{self.prefix}k{self.random.randrange(self.workload.keys_per_client)}"
        started = time.perf_counter()
        if op == "PUT":
            await self._put(key, shared)
        elif op == "GET":
            await self._get(key)
        elif op == "LIST":
            await self._list()
        else:
            await self._delete(key)
        self.report.latencies[op].append(time.perf_counter() - started)

    async def _put(self, key: str, shared: Sequence[bytes]) -> None:
        if self.random.random() < 0.5:
            data = self.random.choice(shared)
        else:
            data = self.random.randbytes(self.random.randrange(1, self.workload.max_size))
        response = await self._send("PUT", f"objects/{key}", content=data)
        if response.is_success:
            self.acknowledged[key] = digest_of(data)

    async def _get(self, key: str) -> None:
        response = await self._send("GET", f"objects/{key}")
        expected = self.acknowledged.get(key)
        if response.status_code == 200:
            if expected is None or digest_of(response.content) != expected:
                self.report.anomalies.append(f"GET {key}: not the last acknowledged bytes")
        elif response.status_code == 404 and expected is not None:
            self.report.anomalies.append(f"GET {key}: 404 after an acknowledged PUT")

    async def _list(self) -> None:
        response = await self._send("GET", "objects", params={"prefix": self.prefix})
        if response.status_code == 200:
            listed = {item["key"] for item in response.json()["items"]}
            live = {key for key, digest in self.acknowledged.items() if digest is not None}
            if listed != live:
                self.report.anomalies.append(f"LIST {self.prefix}: {sorted(listed ^ live)} differ")

    async def _delete(self, key: str) -> None:
        response = await self._send("DELETE", f"objects/{key}")
        if response.status_code == 204:
            self.acknowledged[key] = None
        elif response.status_code == 404 and self.acknowledged.get(key) is not None:
            self.report.anomalies.append(f"DELETE {key}: 404 after an acknowledged PUT")

    async def _send(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        try:
            response = await self.http.request(method, f"/v1/tenants/load/{path}", **kwargs)  # type: ignore[arg-type]
        except httpx.TransportError as exc:
            self.report.server_errors.append(f"{method} {path}: {exc!r}")
            return httpx.Response(599)
        if response.status_code >= 500:
            self.report.server_errors.append(f"{method} {path}: {response.status_code} {response.text[:200]}")
        return response


async def run_load(urls: Sequence[str], token: str, settings: Settings, workload: Workload) -> Report:
    """Drive ``workload`` against the servers at ``urls`` (clients spread over them) with a token of tenant
    ``load``, GC running on ``settings`` every ``gc_every`` seconds; then audit every acknowledged write."""
    report = Report()
    seeded = random.Random(workload.seed)
    shared = [seeded.randbytes(seeded.randrange(1, workload.max_size)) for _ in range(workload.shared_payloads)]
    headers = {"authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=workload.clients)
    async with contextlib.AsyncExitStack() as stack:
        pools = [
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=url, headers=headers, timeout=120, limits=limits)
            )
            for url in urls
        ]
        clients = [_Client(i, pools[i % len(pools)], workload, report) for i in range(workload.clients)]
        deadline = time.monotonic() + workload.seconds
        budget = [workload.max_ops]
        stop = asyncio.Event()

        async def drive(client: _Client) -> None:
            while time.monotonic() < deadline and budget[0] > 0:
                budget[0] -= 1
                await client.step(shared)

        started = time.perf_counter()
        collector = asyncio.create_task(_collect(settings, workload.gc_every, stop, report))
        try:
            await asyncio.gather(*(drive(client) for client in clients))
        finally:
            report.seconds = time.perf_counter() - started
            stop.set()
            await collector
        await _audit(pools[0], clients, report)
    return report


async def _collect(settings: Settings, every: float, stop: asyncio.Event, report: Report) -> None:
    """Run GC with no grace period until ``stop``: reclaim what deletes leave behind while uploads race it."""
    async with await BlobStore.open(replace(settings, gc_grace_seconds=0.0)) as store:
        while not stop.is_set():
            stats = await store.gc()
            report.gc_runs += 1
            report.gc_reclaimed += stats.blobs_reclaimed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)


async def _audit(http: httpx.AsyncClient, clients: Sequence[_Client], report: Report) -> None:
    """Every key a client last saw acknowledged as written holds those bytes; every deleted one is gone."""
    for client in clients:
        for key, digest in client.acknowledged.items():
            report.audited_keys += 1
            response = await http.get(f"/v1/tenants/load/objects/{key}")
            found = digest_of(response.content) if response.status_code == 200 else None
            if response.status_code not in (200, 404) or found != digest:
                report.lost_writes.append(f"{key}: expected {digest}, found {found} ({response.status_code})")


# --- the benchmarks table (H4) and running it on its own -------------------------------------------

TARGET = Target("<=", 0, "failures")
WHAT = "mixed load, 64 clients, 2 servers, GC running"
QUICK = Workload(seconds=30.0)
FULL = Workload()
SERVERS = 2


async def run(ctx: Context, sizes: Workload | None = None) -> list[Row]:
    """H4: one row per operation (throughput, p50/p99 in the notes), judged on the run's failures:
    responses 5xx, answers inconsistent with what was acknowledged, and acknowledged writes lost."""
    workload = sizes or (QUICK if ctx.quick else FULL)
    variant = f"{SERVERS} servers, postgres+s3"
    if ctx.postgres_admin_url is None or not ctx.s3:
        return [unmeasured("H4", variant, WHAT, TARGET, "skip", "needs PostgreSQL and S3, disabled for this run")]
    with phase(ctx, f"H4: {workload.clients} clients for {workload.seconds:g} s against {SERVERS} servers"):
        report = await measure(ctx, workload, SERVERS)
    failures = len(report.server_errors) + len(report.anomalies) + len(report.lost_writes)
    audit = (
        f"{len(report.server_errors)} 5xx, {len(report.anomalies)} inconsistent, "
        f"{len(report.lost_writes)} of {report.audited_keys} audited keys lost; "
        f"{report.gc_runs} GC runs reclaimed {report.gc_reclaimed}"
    )
    if failures:
        audit += "; first failures: " + " | ".join([*report.server_errors, *report.anomalies, *report.lost_writes][:3])
    rows = []
    for op, figures in report.operations().items():
        notes = f"{figures['count']} {op}s, p50 {figures['p50_ms']:g} ms, p99 {figures['p99_ms']:g} ms; {audit}"
        what = f"{op}s/s under {WHAT}"
        rows.append(Row("H4", variant, what, figures["per_second"], None, "ops/s", None, TARGET, failures, notes))
    return rows


async def measure(ctx: Context, workload: Workload, servers: int) -> Report:
    """Drive ``workload`` against ``servers`` ``blobstore serve`` processes sharing a scratch PostgreSQL
    database and a fresh bucket on moto's S3 server."""
    async with s3_bucket() as bucket:
        with postgres_database(ctx) as database_url, tempfile.TemporaryDirectory(dir=ctx.workdir) as home:
            settings = Settings(
                home=Path(home),
                database_url=database_url,
                storage_url=f"s3://{bucket.name}/load",
                s3_endpoint_url=bucket.endpoint.url,
            )
            async with await BlobStore.open(settings, migrate_schema=True) as store:
                token = (await tokens.create(store.core, "load", scopes=tokens.SCOPES)).token
            env = {name: value for name, value in os.environ.items() if not name.startswith("BLOBSTORE_")}
            env.update(
                BLOBSTORE_HOME=home,
                BLOBSTORE_DATABASE_URL=database_url,
                BLOBSTORE_STORAGE_URL=settings.storage_url,
                BLOBSTORE_S3_ENDPOINT_URL=bucket.endpoint.url,
            )
            with _servers(servers, env) as urls:
                return await run_load(urls, token, settings, workload)


@contextlib.contextmanager
def _servers(count: int, env: dict[str, str]) -> Iterator[list[str]]:
    """``count`` ``blobstore serve`` processes with ``env``, each on a free loopback port, until the block ends."""
    processes, urls = [], []
    try:
        for _ in range(count):
            port = _free_port()
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "blobstore", "serve", "--port", str(port)],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            urls.append(f"http://127.0.0.1:{port}")
        for url, process in zip(urls, processes, strict=True):
            _wait_ready(url, process)
        yield urls
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=60)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 90
    while True:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/readyz").status_code == 200:
                return
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the server at {url} did not start")
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--servers", type=int, default=SERVERS)
    arguments = parser.parse_args()
    workload = Workload(clients=arguments.clients, seconds=arguments.seconds)
    with tempfile.TemporaryDirectory() as workdir:
        ctx = Context(quick=False, workdir=Path(workdir), postgres_admin_url=LOCAL_POSTGRES, verbose=False)
        report = asyncio.run(measure(ctx, workload, arguments.servers))
    print(json.dumps(report.summary(), indent=2))


if __name__ == "__main__":
    main()
