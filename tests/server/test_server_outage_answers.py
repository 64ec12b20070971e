"""Outage answers name no address: callers of the HTTP API get a generic 503, the server log gets the detail.

The database outage is real: a PostgreSQL database reached through a proxy
that the test cuts. /readyz (no token) and a tenant's requests answer 503
StorageUnavailable with Retry-After, and neither the body nor any header
carries the database's user, host, port or name; the server log does.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from blobstore import BlobStore, Settings
from blobstore.auth import tokens
from blobstore.server import create_app
from tests.support.tcp_proxy import TcpProxy, proxied

pytestmark = [pytest.mark.postgres, pytest.mark.slow]  # each answer waits out the database retries (~3 s)


@pytest.fixture
def database_proxy(empty_postgres_url: str) -> Iterator[TcpProxy]:
    """A proxy in front of the test's own PostgreSQL database, to cut and restore."""
    url = make_url(empty_postgres_url)
    with proxied(url.host, url.port or 5432) as proxy:
        yield proxy


@pytest.fixture
async def served(
    empty_postgres_url: str, database_proxy: TcpProxy, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, str, str]]:
    """The app in this process over a store whose database is reached through the proxy; yields the client,
    acme's token and the database URL the store uses."""
    database_url = make_url(empty_postgres_url).set(host="127.0.0.1", port=database_proxy.port)
    shown = database_url.render_as_string(hide_password=False)
    settings = Settings(home=tmp_path, database_url=shown, storage_url=(tmp_path / "blobs").as_uri())
    async with await BlobStore.open(settings, migrate_schema=True) as store:
        await store.tenant("acme").put("k", b"stored before the outage")
        token = (await tokens.create(store.core, "acme", scopes=tokens.SCOPES)).token
        app = create_app(store)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://blobstore") as client:
                yield client, token, shown


def revealed(response: httpx.Response, database_url: str) -> list[str]:
    """The parts of the database's address that the response (body or headers) shows."""
    url = make_url(database_url)
    parts = {"user": url.username, "host": url.host, "port": str(url.port), "database": url.database}
    shown = response.text + " ".join(f"{name}: {value}" for name, value in response.headers.items())
    return [name for name, part in parts.items() if part and part in shown]


async def test_a_database_outage_answers_without_the_database_address(
    served: tuple[httpx.AsyncClient, str, str], database_proxy: TcpProxy, caplog: pytest.LogCaptureFixture
) -> None:
    """With the database cut off, /readyz and a tenant's GET, PUT and listing answer a generic 503 with
    Retry-After; the log names the database; when it is back, the same server answers again."""
    client, token, database_url = served
    tenant = {"authorization": f"Bearer {token}"}
    database_proxy.stop()
    with caplog.at_level(logging.WARNING, logger="blobstore.server.problems"):
        answers = {
            "readyz": await client.get("/readyz"),
            "get": await client.get("/v1/tenants/acme/objects/k", headers=tenant),
            "put": await client.put("/v1/tenants/acme/objects/new", content=b"never stored", headers=tenant),
            "list": await client.get("/v1/tenants/acme/objects", headers=tenant),
        }
    for name, response in answers.items():
        assert (response.status_code, response.json()["code"]) == (503, "StorageUnavailable"), name
        assert response.headers["retry-after"] == "1", name
        assert revealed(response, database_url) == [], (name, response.text)
    assert str(database_proxy.port) in caplog.text  # the operator learns which database failed

    database_proxy.start()
    assert (await client.get("/readyz")).status_code == 200
    assert (await client.get("/v1/tenants/acme/objects/k", headers=tenant)).content == b"stored before the outage"
