"""``/docs`` (Swagger UI) and ``/redoc`` render in headless Chromium with no network beyond the server: their
scripts and styles come from the app itself, not a CDN (issue 23, item 9)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from blobstore import Settings
from blobstore.fastapi import mount
from blobstore.server import create_app
from tests.support.live_server import serving_app

#: Every host name but the server's own fails to resolve: a machine without internet access.
OFFLINE = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"


def _settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path, database_url="sqlite+aiosqlite:///:memory:", storage_url="memory://")


def rendered(chromium: str, url: str, profile: Path) -> str:
    """The DOM of ``url`` once its scripts have had ten seconds of (virtual) time, with the network off."""
    done = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={profile}",
            OFFLINE,
            "--virtual-time-budget=10000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout


def _operations(app: FastAPI) -> set[str]:
    return {path for path, methods in app.openapi()["paths"].items() for method in methods}


def _swagger_paths(dom: str) -> set[str]:
    return set(re.findall(r'class="opblock-summary-path" data-path="([^"]+)"', dom))


def test_swagger_ui_shows_every_operation_offline(chromium: str, tmp_path: Path) -> None:
    app = create_app(settings=_settings(tmp_path))
    with serving_app(app) as base:
        dom = rendered(chromium, f"{base}/docs", tmp_path / "profile")
    assert 'src="/docs/assets/swagger-ui-bundle.js"' in dom
    assert _swagger_paths(dom) == _operations(app)
    assert "/objects/{key}" in dom


def test_redoc_shows_the_api_offline(chromium: str, tmp_path: Path) -> None:
    app = create_app(settings=_settings(tmp_path))
    with serving_app(app) as base:
        dom = rendered(chromium, f"{base}/redoc", tmp_path / "profile")
    for operation in app.openapi()["paths"]["/healthz"].values():
        assert operation["summary"] in dom
    assert "/readyz" in dom


def test_the_mounted_api_serves_its_docs_under_its_prefix_offline(chromium: str, tmp_path: Path) -> None:
    host = FastAPI()
    mounted = mount(host, prefix="/storage", settings=_settings(tmp_path), interactive_docs=True)
    with serving_app(host) as base:
        dom = rendered(chromium, f"{base}/storage/docs", tmp_path / "profile")
    assert 'src="/storage/docs/assets/swagger-ui-bundle.js"' in dom
    assert _swagger_paths(dom) == _operations(mounted.api)


def test_without_interactive_docs_no_assets_are_served(tmp_path: Path) -> None:
    with serving_app(create_app(settings=_settings(tmp_path), interactive_docs=False)) as base:
        assert httpx.get(f"{base}/docs").status_code == 404
        assert httpx.get(f"{base}/docs/assets/swagger-ui-bundle.js").status_code == 404
        assert httpx.get(f"{base}/openapi.json").status_code == 200


@pytest.fixture(autouse=True)
def _no_ambient_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BLOBSTORE_DATABASE_URL", "BLOBSTORE_STORAGE_URL"):
        monkeypatch.delenv(name, raising=False)
