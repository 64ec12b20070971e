"""Prometheus metrics of the HTTP service, and ``GET /metrics``.

Requests are counted and timed by method, route template and status class,
never by key or tenant (label values stay few). Bytes in and out are counted
by route template; puts by whether their bytes were already stored.

With ``PROMETHEUS_MULTIPROC_DIR`` set (``blobstore serve --workers N`` sets
it to a directory of its own), every process writes its samples there and
``/metrics`` answers with the sum over all of them, whichever process serves it.
"""

from __future__ import annotations

import os

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"

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

router = APIRouter(tags=["health"])


def record_request(method: str, route: str, status: int, seconds: float, received: int, sent: int) -> None:
    """Count one answered request."""
    status_class = f"{status // 100}xx"
    REQUESTS.labels(method, route, status_class).inc()
    DURATION.labels(method, route, status_class).observe(seconds)
    RECEIVED.labels(route).inc(received)
    SENT.labels(route).inc(sent)


def record_put(deduplicated: bool) -> None:
    """Count one stored object: a dedup hit, or new bytes."""
    PUTS.labels("dedup_hit" if deduplicated else "new_object").inc()


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics() -> Response:
    """The metrics in the Prometheus text format (summed over every server process when multiprocess)."""
    return Response(generate_latest(_registry()), media_type=CONTENT_TYPE_LATEST)


def _registry() -> CollectorRegistry:
    if not os.environ.get(MULTIPROC_DIR):
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry
