"""/metrics is operator telemetry: its dedup and storage-write counters would tell a tenant whether another
tenant holds a guessed file. It is served only on the operator listener (`blobstore serve --metrics-port`),
summed over worker processes, never on the tenants' port nor inside a FastAPI mount (which also keeps its
interactive docs off unless the host opts in)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from blobstore import BlobStore
from blobstore.fastapi import mount
from tests.server.test_server_operations import samples, value
from tests.support.cli_helpers import invoke
from tests.support.live_server import serve_process, serving, serving_app

DATA = b"guessable file " * 64


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_the_tenant_port_has_no_metrics(store: BlobStore) -> None:
    with serving(store.settings) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            assert (await http.get("/healthz")).status_code == 200
            assert (await http.get("/metrics")).status_code == 404


@pytest.fixture
async def mounted(store: BlobStore) -> AsyncIterator[str]:
    host = FastAPI()
    mount(host, prefix="/storage", store=store)
    with serving_app(host) as url:
        yield url


async def test_a_mount_serves_neither_metrics_nor_interactive_docs(mounted: str) -> None:
    async with httpx.AsyncClient(base_url=mounted) as http:
        assert (await http.get("/storage/healthz")).status_code == 200
        for path in ("/storage/metrics", "/storage/docs", "/storage/redoc"):
            assert (await http.get(path)).status_code == 404, path
        assert (await http.get("/storage/openapi.json")).status_code == 200


async def test_a_host_may_opt_in_to_the_mounts_interactive_docs(store: BlobStore) -> None:
    host = FastAPI()
    mount(host, prefix="/storage", store=store, interactive_docs=True)
    with serving_app(host) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            assert (await http.get("/storage/docs")).status_code == 200
            assert (await http.get("/storage/redoc")).status_code == 200
            assert (await http.get("/storage/metrics")).status_code == 404


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_the_operator_port_sums_every_workers_metrics(tmp_path: Path, workers: int) -> None:
    """With --metrics-port, the operator port serves the metric families, summed over the worker processes
    (requests on new connections, so with two workers both serve some); the tenants' port still has none."""
    token = invoke(["token", "create", "acme"], home=tmp_path).ok().stdout.strip()
    metrics_port = free_port()
    args = ("--workers", str(workers), "--metrics-port", str(metrics_port))
    with serve_process(tmp_path, *args, env={"PROMETHEUS_MULTIPROC_DIR": None}) as served:
        auth = {"authorization": f"Bearer {token}", "connection": "close"}
        for n in range(6):
            assert httpx.put(f"{served.url}/v1/tenants/acme/objects/k{n}", content=DATA, headers=auth).is_success
        for _ in range(20):
            assert httpx.get(f"{served.url}/healthz", headers={"connection": "close"}).status_code == 200
        assert httpx.get(f"{served.url}/metrics").status_code == 404
        response = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = samples(response.text)
    assert value(found, "blobstore_http_requests_total", method="GET", route="/healthz", status_class="2xx") == 20
    assert value(found, "blobstore_puts_total", result="new_object") == 1
    assert value(found, "blobstore_puts_total", result="dedup_hit") == 5
    storage = "blobstore_storage_operation_duration_seconds_count"
    assert value(found, storage, operation="write", outcome="ok") == 1
    names = {name for name, _labels in found}
    assert {"blobstore_database_statement_duration_seconds_count", "blobstore_gc_runs_total"} <= names


def test_a_metrics_port_in_use_is_one_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = invoke(["serve", "--port", str(free_port()), "--metrics-port", str(port)], home=tmp_path)
    run.failed(f"--metrics-port: cannot listen on 127.0.0.1:{port}")
