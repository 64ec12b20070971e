"""blobstore.fastapi: the API mounted under a prefix of a host app, and the caller's Tenant in the host's own
handlers; over the example app of the docs, on a real server."""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from blobstore import BlobStore
from blobstore.auth import tokens
from blobstore.client import BlobClient
from blobstore.errors import NotFound
from tests.support.live_server import serving_app

EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "fastapi_app.py"


def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fastapi_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
async def host(store: BlobStore) -> AsyncIterator[str]:
    """The docs' example app over the test's deployment, served on loopback; yields its base URL."""
    with serving_app(example().create(store.settings)) as url:
        yield url


async def test_the_api_is_served_under_the_prefix(host: str, store: BlobStore) -> None:
    """BlobClient works against host/storage exactly as against a server of its own, signed URLs included."""
    token = (await tokens.create(store.core, "acme", scopes=tokens.SCOPES)).token
    async with BlobClient(f"{host}/storage", token) as acme, httpx.AsyncClient() as http:
        await acme.put("invoices/1.pdf", b"%PDF one", content_type="application/pdf")
        assert await acme.get("invoices/1.pdf") == b"%PDF one"
        signed = await acme.sign_url("invoices/1.pdf")
        assert signed.url.startswith(f"{host}/storage/v1/tenants/acme/objects/invoices/1.pdf?")
        assert (await http.get(signed.url)).content == b"%PDF one"
        assert (await http.get(f"{host}/storage/healthz")).status_code == 200
        assert (await http.get(f"{host}/v1/tenants/acme/objects/invoices/1.pdf")).status_code == 404
        await acme.delete("invoices/1.pdf")
        with pytest.raises(NotFound):
            await acme.stat("invoices/1.pdf")


async def test_a_host_handler_gets_the_callers_tenant(host: str, store: BlobStore) -> None:
    """The dependency hands each caller its own tenant: tenants never see each other's keys."""
    await store.tenant("acme").put("invoices/a.pdf", b"aaa")
    await store.tenant("globex").put("invoices/g.pdf", b"gg")
    acme = (await tokens.create(store.core, "acme", scopes=["read"])).token
    globex = (await tokens.create(store.core, "globex", scopes=["read"])).token
    async with httpx.AsyncClient(base_url=host) as http:
        mine = await http.get("/invoices", headers={"authorization": f"Bearer {acme}"})
        theirs = await http.get("/invoices", headers={"authorization": f"Bearer {globex}"})
    assert mine.json() == {"tenant": "acme", "invoices": {"invoices/a.pdf": 3}}
    assert theirs.json() == {"tenant": "globex", "invoices": {"invoices/g.pdf": 2}}


async def test_the_dependency_refuses_bad_tokens_and_missing_scopes(host: str, store: BlobStore) -> None:
    """No or a revoked token: 401 with WWW-Authenticate; a token without the scope: 403."""
    writer = (await tokens.create(store.core, "acme", scopes=["write"])).token
    revoked = await tokens.create(store.core, "acme", scopes=["read"])
    await tokens.revoke(store.core, revoked.info.id)
    async with httpx.AsyncClient(base_url=host) as http:
        missing = await http.get("/invoices")
        assert (missing.status_code, missing.headers["www-authenticate"]) == (401, 'Bearer realm="blobstore"')
        assert (await http.get("/invoices", headers={"authorization": f"Bearer {revoked.token}"})).status_code == 401
        assert (await http.get("/invoices", headers={"authorization": f"Bearer {writer}"})).status_code == 403


def test_a_prefix_must_be_a_path() -> None:
    from fastapi import FastAPI

    from blobstore.fastapi import mount

    for prefix in ("storage", "/storage/", ""):
        with pytest.raises(ValueError, match="prefix"):
            mount(FastAPI(), prefix=prefix)
