"""Operating the service: the metrics (by route template, never by key or tenant; storage, database and GC
figures; on the operator listener, summed over worker processes), X-Request-Id, one access-log line per
request, /readyz's reasons. The servers in this process are scraped through the registry they record into;
tests/server/test_server_metrics_listener.py proves the tenants' port serves none."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from blobstore import BlobStore, StorageUnavailable
from blobstore.auth import tokens
from blobstore.errors import ConfigurationError
from blobstore.server import create_app, metrics
from blobstore.server.app import GC_INTERVAL, app_from_env
from blobstore.testing.faults import Fault, FaultyStorage
from tests.support.access_log import access_log
from tests.support.cli_helpers import invoke
from tests.support.live_server import serve_process, serving, serving_app
from tests.support.stores import FakeClock
from tests.support.workers import scalar

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
    token = (await tokens.create(store.core, "acme", scopes=tokens.SCOPES)).token
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


def deltas(before: Samples, after: Samples) -> Callable[..., float]:
    """``delta(name, **labels)``: how much a sample grew from ``before`` to ``after``."""

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    return delta


def scrape() -> Samples:
    """The metrics of the servers running in this process, as the operator listener would expose them."""
    return samples(generate_latest(metrics.registry()).decode())


# --- metrics -------------------------------------------------------------------------------------


async def test_metrics_count_requests_bytes_and_dedup_by_route_template(live: Live) -> None:
    """Two PUTs (one a dedup hit), a GET and a GET of a missing key show up by method, route template and
    status class, with their bytes; no label names a key or a tenant."""
    before = scrape()
    put = OBJECT_ROUTE
    assert (await live.http.put("/v1/tenants/acme/objects/secret-a", content=DATA, headers=live.auth)).is_success
    assert (await live.http.put("/v1/tenants/acme/objects/secret-b", content=DATA, headers=live.auth)).is_success
    assert (await live.http.get("/v1/tenants/acme/objects/secret-a", headers=live.auth)).content == DATA
    with access_log() as log:
        last = live.auth | {"x-request-id": "last"}
        assert (await live.http.get("/v1/tenants/acme/objects/secret-c", headers=last)).status_code == 404
        await log.line_of("last")  # counted once logged
    after = scrape()
    delta = deltas(before, after)
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
    with access_log() as log:
        await live.http.get("/no/such/path/2", headers={"x-request-id": "last"})
        await log.line_of("last")  # counted once logged
    found = scrape()
    routes = {dict(pairs).get("route") for name, pairs in found if name == "blobstore_http_requests_total"}
    assert "unmatched" in routes
    assert not any(route and route.startswith("/no/") for route in routes)


STORAGE_OPERATIONS = {
    *("check", "write", "write_if_absent", "read", "stat", "delete_many", "list"),
    *("incomplete_uploads", "abort_upload", "enclosing_object"),
    *("stage", "stage_write", "stage_publish", "stage_discard", "make_durable", "set_storage_class"),
}
STATEMENTS = {"select", "insert", "update", "delete", "other"}


def label_values(found: Samples, name: str, label: str) -> set[str]:
    return {dict(pairs)[label] for sample, pairs in found if sample == name}


async def test_metrics_time_storage_operations_and_database_statements(live: Live) -> None:
    """A PUT of new bytes shows one storage write, a GET one read, and the database statements they ran, by
    kind; every label value is an operation name or a statement kind, never a key or a tenant."""
    before = scrape()
    assert (await live.http.put("/v1/tenants/acme/objects/timed-a", content=DATA, headers=live.auth)).is_success
    with access_log() as log:
        last = live.auth | {"x-request-id": "last"}
        assert (await live.http.get("/v1/tenants/acme/objects/timed-a", headers=last)).content == DATA
        await log.line_of("last")  # its read is timed by then
    after = scrape()
    delta = deltas(before, after)
    storage = "blobstore_storage_operation_duration_seconds"
    assert delta(f"{storage}_count", operation="write", outcome="ok") == 1
    assert delta(f"{storage}_count", operation="read", outcome="ok") == 1
    assert delta(f"{storage}_sum", operation="write", outcome="ok") > 0
    database = "blobstore_database_statement_duration_seconds"
    # the put's writes: INSERTs on SQLite; on PostgreSQL data-modifying WITH statements (kind "other")
    writes = sum(delta(f"{database}_count", statement=kind, outcome="ok") for kind in ("insert", "other"))
    assert writes >= 1
    assert delta(f"{database}_count", statement="select", outcome="ok") >= 2  # the token, the key lookup
    assert delta(f"{database}_sum", statement="select", outcome="ok") > 0
    assert label_values(after, f"{storage}_count", "operation") <= STORAGE_OPERATIONS
    assert label_values(after, f"{database}_count", "statement") <= STATEMENTS
    assert label_values(after, f"{storage}_count", "outcome") | label_values(after, f"{database}_count", "outcome") <= {
        "ok",
        "error",
    }


async def scrape_until(holds: Callable[[Samples], bool], what: str) -> Samples:
    """Scrape until ``holds(samples)`` (failing after 30 s); return those samples."""
    deadline = time.monotonic() + 30
    while not holds(found := scrape()):
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        await asyncio.sleep(0.05)
    return found


async def test_the_gc_loop_reclaims_a_deleted_key_and_records_it(store: BlobStore, clock: FakeClock) -> None:
    """With a GC interval, the server collects by itself: after a key is deleted (grace 0) the runs, the
    reclaimed object and bytes and the time of the last success show on /metrics."""
    token = (await tokens.create(store.core, "acme", scopes=tokens.SCOPES)).token
    auth = {"authorization": f"Bearer {token}"}
    settings = replace(store.settings, gc_grace_seconds=0)
    started = time.time()
    with serving_app(create_app(settings=settings, clock=clock, gc_interval=0.05)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            before = scrape()
            assert (await http.put("/v1/tenants/acme/objects/gone", content=DATA, headers=auth)).status_code == 201
            assert (await http.delete("/v1/tenants/acme/objects/gone", headers=auth)).status_code == 204
            clock.advance(1)  # past the (zero) grace
            after = await scrape_until(
                lambda found: deltas(before, found)("blobstore_gc_reclaimed_objects_total", kind="blob") >= 1,
                "the GC loop reclaims the deleted key's blob",
            )
    delta = deltas(before, after)
    assert delta("blobstore_gc_reclaimed_objects_total", kind="blob") == 1
    assert delta("blobstore_gc_reclaimed_bytes_total", kind="blob") == len(DATA)
    assert delta("blobstore_gc_runs_total", outcome="ok") >= 1
    assert delta("blobstore_gc_runs_total", outcome="error") == 0
    assert delta("blobstore_storage_operation_duration_seconds_count", operation="delete_many", outcome="ok") >= 1
    last = value(after, "blobstore_gc_last_success_timestamp_seconds")
    assert last > value(before, "blobstore_gc_last_success_timestamp_seconds")
    assert started < last <= time.time()


async def test_the_loop_expires_keys_by_rule_and_by_their_own_header(store: BlobStore, clock: FakeClock) -> None:
    """With a GC interval, the server also runs lifecycle expiry: a key put with X-Blobstore-Expires-In and a key
    under a rule's prefix go once the store's clock passes their expiry; the expired keys show on /metrics."""
    token = (await tokens.create(store.core, "acme", scopes=tokens.SCOPES)).token
    auth = {"authorization": f"Bearer {token}"}
    await store.set_lifecycle_rule("acme", "tmp/", expire_after=3600)
    with serving_app(create_app(settings=store.settings, clock=clock, gc_interval=0.05)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            own = auth | {"x-blobstore-expires-in": "30m"}
            assert (await http.put("/v1/tenants/acme/objects/own", content=DATA, headers=own)).status_code == 201
            assert (await http.put("/v1/tenants/acme/objects/tmp/a", content=DATA, headers=auth)).status_code == 201
            assert (await http.put("/v1/tenants/acme/objects/kept", content=DATA, headers=auth)).status_code == 201
            before = scrape()
            clock.advance(1800)
            await scrape_until(
                lambda found: deltas(before, found)("blobstore_lifecycle_expired_keys_total") >= 1, "own expires"
            )
            assert (await http.get("/v1/tenants/acme/objects/own", headers=auth)).status_code == 404
            assert (await http.get("/v1/tenants/acme/objects/tmp/a", headers=auth)).status_code == 200
            clock.advance(1800)
            after = await scrape_until(
                lambda found: deltas(before, found)("blobstore_lifecycle_expired_keys_total") >= 2, "tmp/a expires"
            )
            assert (await http.get("/v1/tenants/acme/objects/tmp/a", headers=auth)).status_code == 404
            assert (await http.get("/v1/tenants/acme/objects/kept", headers=auth)).content == DATA
    delta = deltas(before, after)
    assert (delta("blobstore_lifecycle_expired_keys_total"), delta("blobstore_lifecycle_expired_bytes_total")) == (
        2,
        2 * len(DATA),
    )
    assert delta("blobstore_lifecycle_runs_total", outcome="error") == 0


async def test_the_loop_moves_cold_blobs_to_their_storage_class(store: BlobStore, clock: FakeClock) -> None:
    """With a GC interval, the server also runs transitions: a key under a transition rule's prefix moves to
    its class once the store's clock passes the rule; the blobs and stored bytes moved show on /metrics by class."""
    token = (await tokens.create(store.core, "acme", scopes=tokens.SCOPES)).token
    auth = {"authorization": f"Bearer {token}"}
    await store.set_lifecycle_rule("acme", "logs/", transition_after=3600, storage_class="GLACIER_IR")
    with serving_app(create_app(settings=store.settings, clock=clock, gc_interval=0.05)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            assert (await http.put("/v1/tenants/acme/objects/logs/a", content=DATA, headers=auth)).status_code == 201
            before = scrape()
            clock.advance(3600)
            after = await scrape_until(
                lambda found: (
                    deltas(before, found)("blobstore_lifecycle_transitioned_blobs_total", storage_class="GLACIER_IR")
                    >= 1
                ),
                "logs/a cools",
            )
    delta = deltas(before, after)
    stored = await scalar(store, "SELECT stored_size FROM blobs")  # compressed: what storage bills
    assert delta("blobstore_lifecycle_transitioned_bytes_total", storage_class="GLACIER_IR") == stored
    assert delta("blobstore_lifecycle_transition_runs_total", outcome="error") == 0


@pytest.mark.parametrize("header", ["0", "7x", "-1", "1.5h", "99999999999999d"])
async def test_a_bad_expires_in_header_is_400_and_stores_nothing(live: Live, header: str) -> None:
    headers = live.auth | {"x-blobstore-expires-in": header}
    response = await live.http.put("/v1/tenants/acme/objects/k", content=DATA, headers=headers)
    assert (response.status_code, response.json()["code"]) == (400, "InvalidInput")
    assert "x-blobstore-expires-in" in response.json()["detail"]
    assert (await live.http.get("/v1/tenants/acme/objects/k", headers=live.auth)).status_code == 404


async def test_a_failing_gc_run_is_counted_and_the_server_keeps_serving(store: BlobStore) -> None:
    """A GC run that fails (the storage listing breaks) is logged and counted as an error; the loop goes on,
    and once the storage recovers its runs succeed again."""
    storage = FaultyStorage(store.storage)
    store.core = replace(store.core, storage=storage)
    fault = storage.inject(Fault("list", error=StorageUnavailable("listing broke"), times=None))
    app = create_app(store, gc_interval=0.02)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://x") as http:
        before = scrape()
        failed = await scrape_until(
            lambda found: deltas(before, found)("blobstore_gc_runs_total", outcome="error") >= 2,
            "two GC runs have failed",
        )
        assert fault.hits >= 2
        assert (await http.get("/healthz")).status_code == 200
        storage.clear()
        await scrape_until(
            lambda found: deltas(failed, found)("blobstore_gc_runs_total", outcome="ok") >= 1,
            "a GC run succeeds after the storage recovered",
        )
    assert store.storage is storage  # the app gave the store back unwrapped


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
    with access_log() as log:
        await live.http.put("/v1/tenants/acme/objects/private/key.txt", content=DATA, headers=headers)
        await live.http.get("/v1/tenants/acme/objects/private/key.txt", headers=live.auth | {"x-request-id": "get-1"})
        await log.line_of("get-1")  # logged once the answer is sent, maybe after the client has it
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
    store.core = replace(store.core, storage=storage)
    app = create_app(store)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://x") as http:
        storage.inject(Fault("check", error=StorageUnavailable("bucket unreachable")))
        response = await http.get("/readyz")
        assert (response.status_code, response.json()["code"]) == (503, "StorageUnavailable")
        assert "object storage is unavailable" in response.json()["detail"]  # the cause goes to the log
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.get("/readyz")).status_code == 200


# --- several worker processes ---------------------------------------------------------------------


@dataclass(frozen=True)
class Fleet:
    """`blobstore serve --workers 2 --gc-interval 0.2 --metrics-port PORT` with a GC grace of 0, its
    PROMETHEUS_MULTIPROC_DIR left to it: its URL, its metrics URL, stdout file, and a token of tenant acme."""

    url: str
    metrics_url: str
    out: Path
    auth: dict[str, str]


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[Fleet]:
    token = invoke(["token", "create", "acme"], home=tmp_path).ok().stdout.strip()
    env = {"PROMETHEUS_MULTIPROC_DIR": None, "BLOBSTORE_GC_GRACE": "0"}
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        metrics_port = probe.getsockname()[1]
    args = ("--workers", "2", "--gc-interval", "0.2", "--metrics-port", str(metrics_port))
    with serve_process(tmp_path, *args, env=env) as served:
        yield Fleet(
            served.url, f"http://127.0.0.1:{metrics_port}/metrics", served.out, {"authorization": f"Bearer {token}"}
        )


def scrape_fleet(fleet: Fleet) -> Samples:
    """The operator listener's metrics (served by the supervisor process from every worker's samples)."""
    response = httpx.get(fleet.metrics_url)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


def fleet_until(fleet: Fleet, holds: Callable[[Samples], bool], what: str) -> Samples:
    """Scrape the fleet's operator listener until ``holds(samples)`` (failing after 60 s); return those samples.
    A worker records a request once its answer is sent, so a client can be quicker than the count."""
    deadline = time.monotonic() + 60
    while not holds(found := scrape_fleet(fleet)):
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)
    return found


def test_metrics_sum_over_worker_processes(two_workers: Fleet) -> None:
    """With --workers 2, the operator listener counts every request both processes served; each request
    also leaves one access-log line on stdout."""
    for _ in range(20):  # a new connection each time, so both processes serve some
        assert httpx.get(f"{two_workers.url}/healthz", headers={"connection": "close"}).status_code == 200

    def healthz_count(found: Samples) -> float:
        return value(found, "blobstore_http_requests_total", method="GET", route="/healthz", status_class="2xx")

    fleet_until(two_workers, lambda found: healthz_count(found) >= 20, "both processes counted every request")
    for _ in range(4):
        assert healthz_count(scrape_fleet(two_workers)) == 20
    deadline = time.monotonic() + 60
    while (logged := _healthz_lines(two_workers.out)) < 20:
        assert time.monotonic() < deadline, f"{logged} of 20 access-log lines after 60 s"
        time.sleep(0.05)
    assert _healthz_lines(two_workers.out) == 20


def _healthz_lines(out: Path) -> int:
    """How many access-log lines of /healthz requests the fleet's stdout holds."""
    lines = [json.loads(line) for line in out.read_text().splitlines() if line.startswith("{")]
    return sum(1 for line in lines if line["route"] == "/healthz")


def test_storage_database_and_gc_metrics_sum_over_worker_processes(two_workers: Fleet) -> None:
    """With --workers 2 (each process running GC), the operator listener shows every storage write both
    made, the GC runs, the one blob reclaimed once (whichever process reclaimed it, however often the
    processes collect after it) and the latest success."""
    started = time.time()
    keys = [f"fleet-{n}" for n in range(10)]
    with httpx.Client(base_url=two_workers.url, headers={"connection": "close", **two_workers.auth}) as http:
        for n, key in enumerate(keys):  # new bytes each time, from either process
            assert http.put(f"/v1/tenants/acme/objects/{key}", content=DATA + bytes([n])).status_code == 201
        assert http.delete(f"/v1/tenants/acme/objects/{keys[0]}").status_code == 204
    reclaimed = fleet_until(
        two_workers,
        lambda found: value(found, "blobstore_gc_reclaimed_objects_total", kind="blob") >= 1,
        "a GC run reclaims the deleted key's blob",
    )
    runs = value(reclaimed, "blobstore_gc_runs_total", outcome="ok")
    fleet_until(  # any run racing the one that reclaimed the blob has ended, and later ones found nothing
        two_workers,
        lambda found: value(found, "blobstore_gc_runs_total", outcome="ok") >= runs + 4,
        "the processes have run GC four more times between them",
    )
    for _ in range(4):
        found = scrape_fleet(two_workers)
        writes = "blobstore_storage_operation_duration_seconds_count"
        assert value(found, writes, operation="write", outcome="ok") == len(keys)
        assert value(found, "blobstore_database_statement_duration_seconds_count", statement="insert", outcome="ok")
        assert value(found, "blobstore_gc_reclaimed_objects_total", kind="blob") == 1
        assert value(found, "blobstore_gc_reclaimed_bytes_total", kind="blob") == len(DATA) + 1
        assert value(found, "blobstore_gc_runs_total", outcome="ok") >= 2
        assert value(found, "blobstore_gc_runs_total", outcome="error") == 0
        assert started < value(found, "blobstore_gc_last_success_timestamp_seconds") <= time.time()


@pytest.mark.parametrize("interval", ["0", "-1", "soon", "inf", "nan"])
def test_a_bad_gc_interval_in_the_environment_is_a_configuration_error(
    interval: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(GC_INTERVAL, interval)
    with pytest.raises(ConfigurationError, match=GC_INTERVAL):
        app_from_env()
