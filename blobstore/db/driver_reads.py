"""One-statement reads on a pooled driver connection, past SQLAlchemy's per-statement layers: the lookups
every request makes (a token, an access key, a bucket, a key's reference, its ETag).

Each statement is written once, with sqlite3's ``?`` placeholders; PostgreSQL gets asyncpg's ``$1``, ``$2``, ...
in their place. Reads run through :meth:`blobstore.db.engine.Database.on_driver` (errors translated, conflicts
replayed), outside any transaction: each sees everything committed before it, and takes no lock. Values come
back as the driver gives them; :func:`utc` turns either driver's times into aware UTC datetimes, as
:class:`blobstore.db.models.UTCDateTime` reads them.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from blobstore.db import sqlite_driver
from blobstore.db.engine import Database, Driver


async def fetch_rows(database: Database, sql: str, params: Sequence[Any]) -> list[Sequence[Any]]:
    """Every row of ``sql`` (``?`` placeholders) with ``params``: one statement, one hand-off."""
    if database.is_sqlite:

        async def read(driver: Driver) -> Any:
            rows = await sqlite_driver.on_thread(driver.connection, _fetchall, sql, tuple(params))
            driver.sent(sql)
            return rows

    else:
        numbered = _numbered(sql)

        async def read(driver: Driver) -> Any:
            rows = await driver.connection.fetch(numbered, *params)
            driver.sent(numbered)
            return rows

    rows: list[Sequence[Any]] = await database.on_driver(read)
    return rows


async def fetch_row(database: Database, sql: str, params: Sequence[Any]) -> Sequence[Any] | None:
    """The first row of ``sql`` with ``params``, or None."""
    rows = await fetch_rows(database, sql, params)
    return rows[0] if rows else None


def placeholders(count: int) -> str:
    """``?, ?, ?`` for ``count`` values (an ``IN`` list)."""
    return ", ".join(itertools.repeat("?", count))


def utc(value: str | datetime | None) -> datetime | None:
    """A time as a driver returns it (SQLite: ISO text; asyncpg: a naive datetime) as an aware UTC datetime."""
    if value is None:
        return None
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=UTC)


def times_as_utc(row: Sequence[Any], first: int) -> tuple[Any, ...]:
    """``row`` with its values from index ``first`` on (all times) as :func:`utc` gives them."""
    return (*row[:first], *(utc(value) for value in row[first:]))


def _fetchall(connection: Any, sql: str, params: tuple[Any, ...]) -> list[Any]:
    return connection.execute(sql, params).fetchall()  # type: ignore[no-any-return]


@functools.lru_cache(maxsize=256)
def _numbered(sql: str) -> str:
    """``sql`` with its ``?`` placeholders numbered for asyncpg (the statements here quote no ``?``)."""
    counter = itertools.count(1)
    return re.sub(r"\?", lambda _: f"${next(counter)}", sql)
