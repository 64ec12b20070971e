"""A 405 names, in ``Allow``, every method the path answers (RFC 9110 15.5.6), on every path template."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from blobstore import BlobStore
from blobstore.fastapi import mount
from blobstore.server import create_app

#: The methods an HTTP API can be asked for; each path answers some and refuses the others with 405.
METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")
#: Path parameter values that every template accepts.
PARAMETERS = {"tenant": "acme", "key": "dir/x.txt"}
#: The path templates the app serves, with the methods each documents (OpenAPI, plus what it leaves out).
TEMPLATES = [
    ("/v1/tenants/{tenant}/objects/{key}", {"DELETE", "GET", "HEAD", "PUT"}),
    ("/v1/tenants/{tenant}/objects", {"GET"}),
    ("/v1/tenants/{tenant}/copy", {"POST"}),
    ("/v1/tenants/{tenant}/digests/missing", {"POST"}),
    ("/v1/tenants/{tenant}/usage", {"GET"}),
    ("/v1/tenants/{tenant}/signed-urls", {"POST"}),
    ("/v1/tenants/{tenant}/batch/put", {"POST"}),
    ("/v1/tenants/{tenant}/batch/delete", {"POST"}),
    ("/v1/tenants/{tenant}/batch/stat", {"POST"}),
    ("/healthz", {"GET"}),
    ("/readyz", {"GET"}),
]


@pytest.fixture(params=["own app", "mounted"])
async def http(store: BlobStore, request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app in this process: an app of its own, or mounted under /storage of a host app."""
    if request.param == "own app":
        app, base_url = create_app(store), "http://blobstore"
    else:
        app, base_url = FastAPI(), "http://host/storage"
        mount(app, prefix="/storage", store=store)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            yield client


@pytest.mark.parametrize("deployment", ["sqlite-local"])
async def test_the_templates_here_are_every_v1_template_the_app_documents(store: BlobStore) -> None:
    """The table above covers every /v1 path of the OpenAPI document, with its methods (so a new route is tested)."""
    documented = {
        path: {method.upper() for method in operations}
        for path, operations in create_app(store).openapi()["paths"].items()
        if path.startswith("/v1/")
    }
    assert documented == {path: methods for path, methods in TEMPLATES if path.startswith("/v1/")}


@pytest.mark.parametrize("deployment", ["sqlite-local"])
@pytest.mark.parametrize(("template", "allowed"), TEMPLATES)
async def test_a_405_lists_exactly_the_methods_of_the_path(
    http: httpx.AsyncClient, template: str, allowed: set[str]
) -> None:
    """Each method a path does not answer is 405 MethodNotAllowed, whose Allow lists the methods it answers."""
    path = template.format(**PARAMETERS)
    for method in sorted(set(METHODS) - allowed):
        response = await http.request(method, path)
        assert (response.status_code, response.headers["x-blobstore-error"]) == (405, "MethodNotAllowed"), method
        assert set(response.headers["allow"].split(", ")) == allowed, (method, response.headers["allow"])
