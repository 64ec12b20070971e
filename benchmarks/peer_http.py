"""PEER-HTTP: ``blobstore serve`` against svc-infra 1.22.2's own FastAPI storage routes, 4 KiB GETs and PUTs.

Subject: ``blobstore serve`` (one process, SQLite + a local directory): GET of
one 4 KiB object and PUT of new 4 KiB objects under new keys, with a bearer
token. Baseline: svc-infra's routes on uvicorn (one process, a local directory,
:mod:`benchmarks.svc_infra_app`): GET of the signed URL its upload answered,
and multipart POST ``/upload`` of new 4 KiB files under new names. Every PUT
and upload sends fresh random bytes, so neither side can skip a write. The same
16 keep-alive clients (:mod:`benchmarks.http_clients`) drive both, ABBA.

svc-infra is installed without its dependencies, with the multipart parser its
upload route needs: ``pip install --no-deps svc-infra==1.22.2 python-multipart``
(the rows say skip otherwise).
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import sys
from dataclasses import dataclass

import httpx

from benchmarks.harness import Context, Row, Target, interleave, phase, throughput_row, unmeasured
from benchmarks.http_clients import CLIENTS, CpuMeter, cpu_note, expect, timed_clients
from benchmarks.http_get import timed_gets
from benchmarks.http_servers import Server, blobstore_server, svc_infra_server

WHAT = "4 KiB requests/s, 16 keep-alive clients, one server process each, vs svc-infra's storage routes"
TARGETS = {"GET": Target(">=", 1), "PUT": Target(">=", 0.7)}
SIZE = 4096
TENANT_OBJECTS = "/v1/tenants/bench/objects"


@dataclass(frozen=True)
class Sizes:
    requests_per_client: int
    rounds: int


QUICK = Sizes(requests_per_client=25, rounds=4)
FULL = Sizes(requests_per_client=100, rounds=6)


def missing() -> str | None:
    """Why the baseline cannot run, or None."""
    # PEER may have loaded svc_infra already, as a module without a spec (benchmarks.peer.load_svc_infra).
    absent = [name for name in ("svc_infra", "multipart") if not _importable(name)]
    if absent:
        return f"{' and '.join(absent)} not installed (pip install --no-deps svc-infra==1.22.2 python-multipart)"
    return None


def _importable(name: str) -> bool:
    return name in sys.modules or importlib.util.find_spec(name) is not None


async def run(ctx: Context, sizes: Sizes | None = None) -> list[Row]:
    sizes = sizes or (QUICK if ctx.quick else FULL)
    reason = missing()
    if reason is not None:
        return [unmeasured("PEER-HTTP", variant, WHAT, target, "skip", reason) for variant, target in TARGETS.items()]
    work = ctx.workdir / "peer-http"
    with blobstore_server(work / "blobstore") as subject, svc_infra_server(work / "svc-infra") as baseline:
        payload = os.urandom(SIZE)
        async with httpx.AsyncClient(base_url=subject.url, headers=subject.headers) as http:
            expect(await http.put(f"{TENANT_OBJECTS}/small", content=payload), 201, "seeding blobstore")
        async with httpx.AsyncClient(base_url=baseline.url) as http:
            uploaded = await http.post("/upload", files={"file": ("small", payload, "application/octet-stream")})
            expect(uploaded, 200, "seeding svc-infra")
        signed = httpx.URL(uploaded.json()["url"]).raw_path.decode()  # /files/uploads/small?expires=&signature=
        batches = itertools.count()
        sides = {
            "GET": (
                lambda: timed_gets(baseline, signed, sizes.requests_per_client),
                lambda: timed_gets(subject, f"{TENANT_OBJECTS}/small", sizes.requests_per_client),
            ),
            "PUT": (
                lambda: _uploads(baseline, next(batches), sizes),
                lambda: _puts(subject, next(batches), sizes),
            ),
        }
        rows = []
        requests = CLIENTS * sizes.requests_per_client
        for variant, (svc_infra, blobstore) in sides.items():
            label = f"PEER-HTTP {variant}: {CLIENTS} clients x {sizes.requests_per_client}, {sizes.rounds} rounds"
            theirs, ours = CpuMeter(baseline.pid), CpuMeter(subject.pid)
            with phase(ctx, label):
                paired = await interleave(
                    sizes.rounds, theirs.metered(svc_infra, requests), ours.metered(blobstore, requests)
                )
            route = "GET /files/{key} (signed URL)" if variant == "GET" else "multipart POST /upload of new files"
            notes = (
                f"blobstore serve (SQLite + local directory, bearer token) vs svc-infra 1.22.2 {route}, "
                f"each on uvicorn, one worker; {cpu_note(ours, theirs)}"
            )
            rows.append(throughput_row("PEER-HTTP", variant, WHAT, paired, requests, "req/s", TARGETS[variant], notes))
    return rows


async def _puts(server: Server, batch: int, sizes: Sizes) -> float:
    async def put(http: httpx.AsyncClient, client: int, number: int) -> None:
        key = f"{TENANT_OBJECTS}/peer/{batch}/{client}/{number}"
        expect(await http.put(key, content=os.urandom(SIZE)), 201, f"PUT {key}")

    return await timed_clients(server, sizes.requests_per_client, put)


async def _uploads(server: Server, batch: int, sizes: Sizes) -> float:
    async def upload(http: httpx.AsyncClient, client: int, number: int) -> None:
        file = (f"peer-{batch}-{client}-{number}", os.urandom(SIZE), "application/octet-stream")
        expect(await http.post("/upload", files={"file": file}), 200, "POST /upload")

    return await timed_clients(server, sizes.requests_per_client, upload)
