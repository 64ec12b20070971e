"""Operating the service: /metrics (by route template, never by key or tenant; summed over worker processes),
X-Request-Id, one access-log line per request, /readyz's reasons."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cli_helpers import invoke
from conftest import FakeClock
from live_server import serve_process, serving
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from blobstore import BlobStore, StorageUnavailable, tokens
from blobstore.server import create_app
from blobstore.testing.faults import Fault, FaultyStorage

OBJECT_ROUTE = "/v1/tenants/{tenant}/objects/{key}"
DATA = b"metrics " * 512  # 4096 bytes
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@dataclass
class Live:
    url: str
    http: httpx.AsyncClient
    auth: dict[str, str]


@pytest.fixture
async def live(store: BlobStore, clock: FakeClock) -> AsyncIterator[Live]:
    token = (await tokens.create(store, "acme", scopes=tokens.SCOPES)).token
    with serving(store.settings, clock=clock) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            yield Live(url, http, {"authorization": f"Bearer {token}"})


def samples(exposition: str) -> Samples:
    """Every sample of a Prometheus text exposition, by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


async def scrape(http: httpx.AsyncClient) -> Samples:
    response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


# --- /metrics -------------------------------------------------------------------------------------


async def test_metrics_count_requests_bytes_and_dedup_by_route_template(live: Live) -> None:
    """Two PUTs (one a dedup hit), a GET and a GET of a missing key show up by method, route template and
    status class, with their bytes; no label names a key or a tenant."""
    before = await scrape(live.http)
    put = OBJECT_ROUTE
    assert (await live.http.put("/v1/tenants/acme/objects/secret-a", content=DATA, headers=live.auth)).is_success
    assert (await live.http.put("/v1/tenants/acme/objects/secret-b", content=DATA, headers=live.auth)).is_success
    assert (await live.http.get("/v1/tenants/acme/objects/secret-a", headers=live.auth)).content == DATA
    assert (await live.http.get("/v1/tenants/acme/objects/secret-c", headers=live.auth)).status_code == 404
    after = await scrape(live.http)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("blobstore_http_requests_total", method="PUT", route=put, status_class="2xx") == 2
    assert delta("blobstore_http_requests_total", method="GET", route=put, status_class="2xx") == 1
    assert delta("blobstore_http_requests_total", method="GET", route=put, status_class="4xx") == 1
    assert delta("blobstore_http_request_duration_seconds_count", method="PUT", route=put, status_class="2xx") == 2
    assert delta("blobstore_http_received_bytes_total", route=put) == 2 * len(DATA)
    assert delta("blobstore_http_sent_bytes_total", route=put) >= len(DATA)
    assert delta("blobstore_puts_total", result="new_object") == 1
    assert delta("blobstore_puts_total", result="dedup_hit") == 1
    labels = {label for _name, pairs in after for pair in pairs for label in pair}
    assert not any("secret" in label or "acme" in label for label in labels)


async def test_an_unknown_path_is_counted_as_unmatched(live: Live) -> None:
    """Paths no route knows share one label value, so they cannot grow the label set."""
    await live.http.get("/no/such/path/1")
    await live.http.get("/no/such/path/2")
    found = await scrape(live.http)
    routes = {dict(pairs).get("route") for name, pairs in found if name == "blobstore_http_requests_total"}
    assert "unmatched" in routes
    assert not any(route and route.startswith("/no/") for route in routes)


# --- request id and access log --------------------------------------------------------------------


async def test_a_request_id_is_echoed_or_generated(live: Live) -> None:
    echoed = await live.http.get("/healthz", headers={"x-request-id": "trace-42"})
    assert echoed.headers["x-request-id"] == "trace-42"
    first = (await live.http.get("/healthz")).headers["x-request-id"]
    second = (await live.http.get("/healthz", headers={"x-request-id": "x" * 129})).headers["x-request-id"]
    assert len(first) == len(second) == 32
    assert first != second


async def test_each_request_logs_one_structured_line(live: Live, caplog: pytest.LogCaptureFixture) -> None:
    """One JSON line per request: method, route template, status, bytes, duration, tenant, request id; no key."""
    caplog.set_level(logging.INFO, logger="blobstore.access")
    headers = live.auth | {"x-request-id": "put-1"}
    await live.http.put("/v1/tenants/acme/objects/private/key.txt", content=DATA, headers=headers)
    await live.http.get("/v1/tenants/acme/objects/private/key.txt", headers=live.auth | {"x-request-id": "get-1"})
    lines = [json.loads(record.getMessage()) for record in caplog.records if record.name == "blobstore.access"]
    assert [line["request_id"] for line in lines] == ["put-1", "get-1"]
    put, get = lines
    assert {key: put[key] for key in ("method", "route", "status", "bytes_in", "tenant")} == {
        "method": "PUT",
        "route": OBJECT_ROUTE,
        "status": 201,
        "bytes_in": len(DATA),
        "tenant": "acme",
    }
    assert (get["status"], get["bytes_out"]) == (200, len(DATA))
    assert put["duration_ms"] >= 0
    assert not any("private" in record.getMessage() for record in caplog.records)


# --- readiness ------------------------------------------------------------------------------------


async def test_readyz_is_503_with_the_reason_when_the_schema_is_behind(live: Live, store: BlobStore) -> None:
    assert (await live.http.get("/readyz")).status_code == 200
    async with store.database.engine.begin() as conn:
        current = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
        await conn.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    try:
        response = await live.http.get("/readyz")
    finally:
        async with store.database.engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": current})
    assert response.status_code == 503
    assert "schema is not current" in response.json()["detail"]
    assert (await live.http.get("/readyz")).status_code == 200
    assert (await live.http.get("/healthz")).status_code == 200


async def test_readyz_is_503_with_the_reason_when_storage_is_unreachable(store: BlobStore) -> None:
    storage = FaultyStorage(store.storage)
    store.storage = storage
    app = create_app(store)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://x") as http:
        storage.inject(Fault("check", error=StorageUnavailable("bucket unreachable")))
        response = await http.get("/readyz")
        assert (response.status_code, response.json()["code"]) == (503, "StorageUnavailable")
        assert "bucket unreachable" in response.json()["detail"]
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.get("/readyz")).status_code == 200


# --- several worker processes ---------------------------------------------------------------------


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """`blobstore serve --workers 2`, its PROMETHEUS_MULTIPROC_DIR left to it: its URL and stdout file."""
    invoke(["token", "create", "acme"], home=tmp_path).ok()
    with serve_process(tmp_path, "--workers", "2", env={"PROMETHEUS_MULTIPROC_DIR": None}) as served:
        yield served.url, served.out


def test_metrics_sum_over_worker_processes(two_workers: tuple[str, Path]) -> None:
    """With --workers 2, /metrics from either process counts every request both served; each request
    also leaves one access-log line on stdout."""
    url, out = two_workers
    for _ in range(20):  # a new connection each time, so both processes serve some
        assert httpx.get(f"{url}/healthz", headers={"connection": "close"}).status_code == 200
    for _ in range(4):
        found = samples(httpx.get(f"{url}/metrics", headers={"connection": "close"}).text)
        count = value(found, "blobstore_http_requests_total", method="GET", route="/healthz", status_class="2xx")
        assert count == 20
    lines = [json.loads(line) for line in out.read_text().splitlines() if line.startswith("{")]
    assert sum(1 for line in lines if line["route"] == "/healthz") == 20
