"""A client in any language can use the service: PUT, GET with Range, list and DELETE with the curl binary alone."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from blobstore import BlobStore
from blobstore.auth import tokens
from tests.support.live_server import serving
from tests.support.stores import FakeClock

KEY_IN_URL = "reports/2026%20Q4/r%C3%A9sum%C3%A9%3F%23.txt"  # "reports/2026 Q4/résumé?#.txt"
KEY = "reports/2026 Q4/résumé?#.txt"


@pytest.fixture
async def server(store: BlobStore, clock: FakeClock) -> AsyncIterator[tuple[str, str]]:
    """A live server of the store and an all-scopes token of tenant acme."""
    if shutil.which("curl") is None:
        pytest.fail("the curl binary is needed (apt-get install curl)")
    token = (await tokens.create(store.core, "acme", scopes=tokens.SCOPES)).token
    with serving(store.settings, clock=clock) as url:
        yield url, token


async def curl(*args: str) -> tuple[int, bytes]:
    """Run curl; return its HTTP status (from --write-out) and the body."""
    run = await asyncio.to_thread(
        subprocess.run,
        ["curl", "--silent", "--show-error", "--write-out", "\n%{http_code}", *args],
        capture_output=True,
        check=True,
        timeout=60,
    )
    body, _, status = run.stdout.rpartition(b"\n")
    return int(status), body


async def test_curl_put_get_range_list_delete(server: tuple[str, str], tmp_path: Path) -> None:
    """curl -T uploads, -r reads a range (206), the listing is JSON, -X DELETE removes (204, then 404)."""
    url, token = server
    auth = f"Authorization: Bearer {token}"
    upload = tmp_path / "report.txt"
    upload.write_bytes(b"0123456789" * 1000)
    target = f"{url}/v1/tenants/acme/objects/{KEY_IN_URL}"

    status, body = await curl("-T", str(upload), "-H", auth, "-H", "Content-Type: text/plain", target)
    assert status == 201
    assert json.loads(body)["key"] == KEY

    status, body = await curl("-H", auth, "-r", "10-14", target)
    assert (status, body) == (206, b"01234")
    status, body = await curl("-H", auth, "-o", str(tmp_path / "whole"), target)
    assert status == 200
    assert (tmp_path / "whole").read_bytes() == upload.read_bytes()

    status, body = await curl("-H", auth, "-G", "--data-urlencode", "prefix=reports/", f"{url}/v1/tenants/acme/objects")
    assert status == 200
    assert [(item["key"], item["size"]) for item in json.loads(body)["items"]] == [(KEY, 10_000)]

    assert (await curl("-H", auth, "-X", "DELETE", target))[0] == 204
    status, body = await curl("-H", auth, target)
    assert status == 404
    assert json.loads(body)["code"] == "NotFound"
