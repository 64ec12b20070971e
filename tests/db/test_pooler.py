"""A store behind a transaction-mode connection pooler (``?pooler=transaction``).

A pooler such as pgbouncer in transaction mode may give each transaction, and each statement outside
one, another server connection, so nothing may rely on what an earlier transaction left on a server
connection. The one such thing blobstore would leave is a named prepared statement; with the option
none is left. CI runs the whole PostgreSQL suite through pgbouncer (scripts/with-pgbouncer).
"""

from __future__ import annotations

from contextlib import AsyncExitStack

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from blobstore import BlobStore, Settings
from blobstore.errors import ConfigurationError
from tests.support.stores import StoreFactory


def test_only_the_transaction_mode_is_understood() -> None:
    url = "postgresql://u@h/db"
    assert Settings.from_env({"BLOBSTORE_DATABASE_URL": f"{url}?pooler=transaction"}).database_url.endswith(
        "?pooler=transaction"
    )
    with pytest.raises(ConfigurationError, match="BLOBSTORE_DATABASE_URL: unknown pooler 'session'"):
        Settings.from_env({"BLOBSTORE_DATABASE_URL": f"{url}?pooler=session"})


async def _named_statements(store: BlobStore) -> int:
    """How many named prepared statements the store's pooled server connections hold, all of them."""
    engine = store.database.engine
    async with AsyncExitStack() as stack:
        connections = [await stack.enter_async_context(engine.connect()) for _ in range(engine.pool.checkedin())]
        counts = [
            (await conn.execute(text("SELECT count(*) FROM pg_prepared_statements"))).scalar_one()
            for conn in connections
        ]
    return sum(counts)


@pytest.mark.parametrize("pooler", [True, False], ids=["pooler", "direct"])
async def test_behind_a_pooler_no_statement_stays_prepared_on_a_server_connection(
    open_store: StoreFactory, postgres_url: str, pooler: bool
) -> None:
    """With ``?pooler=transaction`` puts, reads, deletes and GC leave no named prepared statement; without
    it they do (the check can fail), so that case needs a direct connection to the server."""
    url = make_url(postgres_url)
    if not pooler and "pooler" in url.query:
        pytest.skip("the suite reaches PostgreSQL through a pooler: what a server connection holds is not this store's")
    url = url.update_query_dict({"pooler": "transaction"}) if pooler else url.difference_update_query(["pooler"])
    store = await open_store("postgres-s3", database_url=url.render_as_string(hide_password=False))
    acme = store.tenant("acme")
    await acme.put("a", b"bytes")
    await acme.put("b", b"bytes")
    assert await acme.get("a") == b"bytes"
    assert (await acme.stat("b")).size == 5
    assert [info.key for info in await acme.list()] == ["a", "b"]
    await acme.delete("a")
    await store.gc()
    assert (await _named_statements(store) == 0) is pooler
