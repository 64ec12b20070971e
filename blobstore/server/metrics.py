"""Prometheus metrics of the HTTP service, served only on an operator listener (:func:`listening`).

Requests are counted and timed by method, route template and status class,
never by key or tenant (label values stay few). Bytes in and out are counted
by route template; puts by whether their bytes were already stored. Storage
operations are timed by operation and outcome, database statements by kind
and outcome (:data:`OBSERVER`, through blobstore.core.instrument). GC runs made by
this server (``blobstore serve --gc-interval``) are counted by outcome, with
what they reclaimed and when one last succeeded; so are the lifecycle expiry runs
that precede them, with the keys and bytes they expired, and the storage-class
transition runs, with the blobs and stored bytes they moved by class.

The tenant-facing app never serves them: the counters would tell a tenant
whether another tenant already holds a file (a dedup hit writes no bytes).
``blobstore serve --metrics-port`` runs :func:`listening` in its own process,
the uvicorn supervisor when there are several workers. With
``PROMETHEUS_MULTIPROC_DIR`` set (``blobstore serve --workers N`` sets it to a
directory of its own), every process writes its samples there and the
listener answers with the sum over all of them.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from typing import TYPE_CHECKING

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, multiprocess, start_http_server

if TYPE_CHECKING:
    from collections.abc import Iterator

    from blobstore.core.instrument import Outcome, StatementKind
    from blobstore.maintenance.lifecycle import ExpiryStats
    from blobstore.maintenance.transitions import TransitionStats
    from blobstore.protocol.gc import GcStats

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"
#: Buckets of the storage and database durations: a statement takes a fraction of a millisecond, a large write seconds.
_BACKEND_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

REQUESTS = Counter("blobstore_http_requests", "HTTP requests answered.", ["method", "route", "status_class"])
DURATION = Histogram(
    "blobstore_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer.",
    ["method", "route", "status_class"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
RECEIVED = Counter("blobstore_http_received_bytes", "Request body bytes received.", ["route"])
SENT = Counter("blobstore_http_sent_bytes", "Response body bytes sent.", ["route"])
PUTS = Counter(
    "blobstore_puts", "Objects stored over HTTP, by whether their bytes were already held (dedup hit).", ["result"]
)
STORAGE = Histogram(
    "blobstore_storage_operation_duration_seconds",
    "Time the object storage took per operation (reads and listings: waiting for the storage only).",
    ["operation", "outcome"],
    buckets=_BACKEND_BUCKETS,
)
DATABASE = Histogram(
    "blobstore_database_statement_duration_seconds",
    "Time the metadata database took per statement, by kind (select, insert, update, delete, other).",
    ["statement", "outcome"],
    buckets=_BACKEND_BUCKETS,
)
GC_RUNS = Counter("blobstore_gc_runs", "GC runs this server started, by outcome (ok, error).", ["outcome"])
GC_OBJECTS = Counter(
    "blobstore_gc_reclaimed_objects",
    "Objects GC runs of this server deleted: unreferenced blobs, orphans, aborted incomplete uploads.",
    ["kind"],
)
GC_BYTES = Counter("blobstore_gc_reclaimed_bytes", "Bytes GC runs of this server deleted (blobs, orphans).", ["kind"])
GC_LAST_SUCCESS = Gauge(
    "blobstore_gc_last_success_timestamp_seconds",
    "When a GC run of a server last succeeded (unix seconds; 0 before the first).",
    multiprocess_mode="max",  # the latest over every process, dead ones included
)
EXPIRY_RUNS = Counter(
    "blobstore_lifecycle_runs", "Lifecycle expiry runs this server started, by outcome (ok, error).", ["outcome"]
)
EXPIRED_KEYS = Counter("blobstore_lifecycle_expired_keys", "Keys lifecycle expiry runs of this server deleted.")
EXPIRED_BYTES = Counter("blobstore_lifecycle_expired_bytes", "Logical bytes of the keys those runs deleted.")
SPOOL_BLOBS = Gauge(
    "blobstore_spool_blobs",
    "Blobs this node's spool holds until drained into object storage (docs/spool.md).",
    multiprocess_mode="livemax",  # every worker of a node sees the same catalog
)
SPOOL_BYTES = Gauge(
    "blobstore_spool_bytes",
    "Stored bytes this node's spool holds until drained into object storage.",
    multiprocess_mode="livemax",
)
TRANSITION_RUNS = Counter(
    "blobstore_lifecycle_transition_runs",
    "Storage-class transition runs this server started, by outcome (ok, error).",
    ["outcome"],
)
TRANSITIONED_BLOBS = Counter(
    "blobstore_lifecycle_transitioned_blobs", "Blobs those runs moved, by the class moved to.", ["storage_class"]
)
TRANSITIONED_BYTES = Counter(
    "blobstore_lifecycle_transitioned_bytes",
    "Stored bytes of the blobs moved, by the class moved to.",
    ["storage_class"],
)
for _outcome in ("ok", "error"):  # every series exists from the start, so rates and alerts see zeros
    GC_RUNS.labels(_outcome)
    EXPIRY_RUNS.labels(_outcome)
    TRANSITION_RUNS.labels(_outcome)
for _kind in ("blob", "orphan", "upload"):
    GC_OBJECTS.labels(_kind)
for _kind in ("blob", "orphan"):
    GC_BYTES.labels(_kind)


def record_request(method: str, route: str, status: int, seconds: float, received: int, sent: int) -> None:
    """Count one answered request."""
    requests, duration, received_bytes, sent_bytes = _request_series(method, route, status // 100)
    requests.inc()
    duration.observe(seconds)
    received_bytes.inc(received)
    sent_bytes.inc(sent)


@functools.cache
def _request_series(method: str, route: str, status_class: int) -> tuple[Counter, Histogram, Counter, Counter]:
    """The four series one request of ``method`` on ``route`` with a ``status_class`` status counts in, looked
    up once (the label sets are few: methods, route templates, status classes)."""
    labels = (method, route, f"{status_class}xx")
    return REQUESTS.labels(*labels), DURATION.labels(*labels), RECEIVED.labels(route), SENT.labels(route)


@functools.cache
def _series(histogram: Histogram, *labels: str) -> Histogram:
    """``histogram.labels(*labels)``, looked up once per label set."""
    return histogram.labels(*labels)


def record_put(deduplicated: bool) -> None:
    """Count one stored object: a dedup hit, or new bytes."""
    PUTS.labels("dedup_hit" if deduplicated else "new_object").inc()


class _Observer:
    """Records blobstore.core.instrument's timings into :data:`STORAGE` and :data:`DATABASE`."""

    def storage_operation(self, operation: str, outcome: Outcome, seconds: float) -> None:
        _series(STORAGE, operation, outcome).observe(seconds)

    def database_statement(self, kind: StatementKind, outcome: Outcome, seconds: float) -> None:
        _series(DATABASE, kind, outcome).observe(seconds)


#: The observer the app instruments its store with.
OBSERVER = _Observer()


def record_gc(stats: GcStats) -> None:
    """Count one GC run that succeeded, with what it reclaimed, as the last success (now)."""
    GC_RUNS.labels("ok").inc()
    GC_OBJECTS.labels("blob").inc(stats.blobs_reclaimed)
    GC_OBJECTS.labels("orphan").inc(stats.orphans_deleted)
    GC_OBJECTS.labels("upload").inc(stats.incomplete_uploads_aborted)
    GC_BYTES.labels("blob").inc(stats.bytes_reclaimed)
    GC_BYTES.labels("orphan").inc(stats.orphan_bytes)
    GC_LAST_SUCCESS.set(time.time())


def record_expiry(stats: ExpiryStats) -> None:
    """Count one lifecycle expiry run that succeeded, with the keys and bytes it expired."""
    EXPIRY_RUNS.labels("ok").inc()
    EXPIRED_KEYS.inc(stats.keys)
    EXPIRED_BYTES.inc(stats.bytes)


def record_transitions(stats: TransitionStats) -> None:
    """Count one transition run that succeeded, with the blobs and bytes it moved to each class."""
    TRANSITION_RUNS.labels("ok").inc()
    for storage_class, moved in stats.classes.items():
        TRANSITIONED_BLOBS.labels(storage_class).inc(moved.blobs)
        TRANSITIONED_BYTES.labels(storage_class).inc(moved.bytes)


def record_transition_failure() -> None:
    """Count one transition run that failed."""
    TRANSITION_RUNS.labels("error").inc()


def record_expiry_failure() -> None:
    """Count one lifecycle expiry run that failed."""
    EXPIRY_RUNS.labels("error").inc()


def record_gc_failure() -> None:
    """Count one GC run that failed."""
    GC_RUNS.labels("error").inc()


@contextlib.contextmanager
def listening(host: str, port: int) -> Iterator[None]:
    """Serve the metrics (Prometheus text format, at ``/metrics``) on ``host:port`` from a thread of this
    process while the block runs; OSError if the address cannot be bound."""
    server, thread = start_http_server(port, host, registry())
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def registry() -> CollectorRegistry:
    """The metrics to expose: this process's, or the sum over every process writing to :data:`MULTIPROC_DIR`."""
    if not os.environ.get(MULTIPROC_DIR):
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


def record_spool(blobs: int, size: int) -> None:
    """What this node's spool holds now."""
    SPOOL_BLOBS.set(blobs)
    SPOOL_BYTES.set(size)
