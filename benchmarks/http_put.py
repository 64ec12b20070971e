"""H2: PUT of 64 MiB of new bytes over HTTP vs the in-process ``Tenant.put`` of the same bytes.

Subject: a client streams the bytes to ``blobstore serve`` (SQLite + local
directory), which hashes them as it writes them into the storage's staging
place and then publishes them under their key (a rename). Baseline: ``Tenant.put`` of
the same bytes object in this process, on a store of its own. Every put is of
bytes stored nowhere yet (a unique first MiB), so neither side deduplicates.

Two clients, a row each: curl (another process, C: the figure is the server's)
and httpx in the benchmark's own process (a Python client's cost included: on
2 cores its CPU competes with the server's).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from benchmarks.deployments import open_store
from benchmarks.harness import Context, Row, Target, interleave, phase, throughput_row, unmeasured
from benchmarks.http_servers import Server, blobstore_server

TARGET = Target(">=", 0.7)
MiB = 1024 * 1024


@dataclass(frozen=True)
class Sizes:
    size: int
    rounds: int


QUICK = Sizes(size=64 * MiB, rounds=4)
FULL = Sizes(size=64 * MiB, rounds=8)


async def run(ctx: Context, sizes: Sizes | None = None) -> list[Row]:
    sizes = sizes or (QUICK if ctx.quick else FULL)
    filler = os.urandom(MiB) * max(0, sizes.size // MiB - 1)
    counter = iter(range(10**9))
    body = ctx.workdir / "h2-body"
    what = f"PUT of {sizes.size // MiB} MiB over HTTP vs in-process Tenant.put"

    def fresh() -> tuple[str, bytes]:
        n = next(counter)
        return f"put-{n}", (os.urandom(MiB) + filler)[: sizes.size]

    rows = []
    async with open_store(ctx.workdir / "h2-local") as store:
        tenant = store.tenant("bench")
        with blobstore_server(ctx.workdir / "h2-server") as server:
            async with httpx.AsyncClient(base_url=server.url, headers=server.headers, timeout=600) as http:

                async def with_httpx() -> float:
                    key, data = fresh()
                    started = time.perf_counter()
                    response = await http.put(f"/v1/tenants/bench/objects/{key}", content=data)
                    seconds = time.perf_counter() - started
                    response.raise_for_status()
                    return seconds

                async def with_curl() -> float:
                    key, data = fresh()
                    _write_durably(body, data)  # no dirty pages left to slow the server's fsync
                    started = time.perf_counter()
                    await _curl_put(server, f"/v1/tenants/bench/objects/{key}", body)
                    return time.perf_counter() - started

                async def in_process() -> float:
                    key, data = fresh()
                    started = time.perf_counter()
                    await tenant.put(key, data)
                    return time.perf_counter() - started

                for client, over_http in {"curl": with_curl, "httpx": with_httpx}.items():
                    variant = f"local+sqlite, {client}"
                    if client == "curl" and shutil.which("curl") is None:
                        rows.append(unmeasured("H2", variant, what, TARGET, "skip", "curl is not installed"))
                        continue
                    with phase(ctx, f"H2 {sizes.size // MiB} MiB puts with {client}, {sizes.rounds} rounds"):
                        paired = await interleave(sizes.rounds, in_process, over_http)
                    notes = f"new bytes every put; server: one blobstore serve process; {_CLIENTS[client]}"
                    rows.append(throughput_row("H2", variant, what, paired, sizes.size / MiB, "MiB/s", TARGET, notes))
    return rows


#: What each client row measures.
_CLIENTS = {
    "curl": "client: curl -T (a file in the page cache), another process: the server's own speed",
    "httpx": "client: httpx in the benchmark's process, whose own CPU competes with the server's for 2 cores",
}


def _write_durably(path: Path, data: bytes) -> None:
    with path.open("wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())


async def _curl_put(server: Server, path: str, body: Path) -> None:
    """PUT the file ``body`` to ``path`` with curl; raises unless the server answered 201."""
    headers = [arg for name, value in server.headers.items() for arg in ("-H", f"{name}: {value}")]
    process = await asyncio.create_subprocess_exec(
        "curl",
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-T",
        str(body),
        *headers,
        f"{server.url}{path}",
        stdout=asyncio.subprocess.PIPE,
    )
    status, _ = await process.communicate()
    if status != b"201":
        raise RuntimeError(f"curl PUT {path} answered {status.decode() or process.returncode}")
