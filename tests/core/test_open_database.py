"""Opening the database: a connection cut under the first statement is tried again; a bad URL is not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from blobstore.core import context
from blobstore.core.config import Settings
from blobstore.errors import ConfigurationError


class Terminated(Exception):
    """What a driver raises when the server ended the connection (pg_terminate_backend, a restart)."""


def cut_connections(monkeypatch: pytest.MonkeyPatch, times: int) -> list[str]:
    """The first ``times`` statements fail as a connection the server terminated; the statements tried."""
    tried: list[str] = []
    original = AsyncConnection.exec_driver_sql

    async def flaky(self: AsyncConnection, statement: str, *args: Any, **kwargs: Any) -> Any:
        tried.append(statement)
        if len(tried) <= times:
            raise DBAPIError(statement, None, Terminated("terminating connection"), connection_invalidated=True)
        return await original(self, statement, *args, **kwargs)

    monkeypatch.setattr(AsyncConnection, "exec_driver_sql", flaky)
    return tried


def settings(home: Path, database_url: str) -> Settings:
    return Settings(home=home, database_url=database_url, storage_url=(home / "blobs").as_uri())


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
async def test_a_connection_cut_under_the_first_statement_is_tried_again(
    database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    sqlite = f"sqlite+aiosqlite:///{tmp_path / 'blobstore.db'}"
    url = request.getfixturevalue("postgres_url") if database == "postgres" else sqlite
    tried = cut_connections(monkeypatch, times=2)

    opened = await context.open_database(settings(tmp_path, url))

    await opened.dispose()
    assert tried == ["SELECT 1"] * 3


async def test_a_connection_cut_every_time_is_a_configuration_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tried = cut_connections(monkeypatch, times=10)

    with pytest.raises(ConfigurationError, match="cannot connect to the database: terminating connection"):
        await context.open_database(settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'b.db'}"))
    assert len(tried) == 3
