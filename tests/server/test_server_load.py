"""The service under load, small: concurrent clients doing mixed PUT/GET/LIST/DELETE against two server
processes sharing PostgreSQL and S3, GC running with no grace period: no 5xx, every answer consistent with
what was acknowledged, no acknowledged write lost (``python -m benchmarks.http_load`` is the full run)."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import pytest

from benchmarks.http_load import Workload, run_load
from blobstore.auth import tokens
from tests.support.live_server import serve_process
from tests.support.stores import StoreFactory


@pytest.mark.postgres
async def test_two_servers_under_mixed_load_with_gc_lose_nothing(open_store: StoreFactory, tmp_path: Path) -> None:
    store = await open_store("postgres-s3")
    token = (await tokens.create(store.core, "load", scopes=tokens.SCOPES)).token
    settings = store.settings
    env: dict[str, str | None] = {
        "BLOBSTORE_DATABASE_URL": settings.database_url,
        "BLOBSTORE_STORAGE_URL": settings.storage_url,
        "BLOBSTORE_S3_ENDPOINT_URL": settings.s3_endpoint_url,
    }
    with ExitStack() as servers:
        urls = [servers.enter_context(serve_process(tmp_path / f"server{i}", env=env)).url for i in range(2)]
        report = await run_load(urls, token, settings, Workload(clients=8, seconds=8, max_ops=600))
    summary = report.summary()
    assert report.server_errors == [], report.server_errors[:5]
    assert report.anomalies == [], report.anomalies[:5]
    assert report.lost_writes == [], report.lost_writes[:5]
    assert all(summary["operations"][op]["count"] > 0 for op in ("PUT", "GET", "LIST", "DELETE"))  # type: ignore[index]
    assert report.gc_runs > 0
    assert report.gc_reclaimed > 0
    assert report.audited_keys > 0
