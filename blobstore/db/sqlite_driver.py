"""SQLAlchemy's aiosqlite dialect with one thread hand-off per statement instead of four.

aiosqlite runs every call on the connection's own thread and wakes the event
loop when it is done. SQLAlchemy's adapter makes four such calls per statement
(open a cursor, execute, fetch all rows, close the cursor) and one more per
connection check-in (a rollback, even when no transaction is open). On the
metadata path those hand-offs, not SQLite, are most of the time a statement
takes (cProfile of 2,000 ``stat`` calls: five wake-ups each).

This dialect keeps everything else of SQLAlchemy's (compilation, caching,
error translation, disconnect detection, pooling); only its cursor differs: it
runs the whole statement (cursor, execute, fetch, close) as one call on the
connection's thread, and a rollback with no transaction open is skipped.
:class:`blobstore.db.engine.Database` uses it for every ``sqlite+aiosqlite``
URL, under the driver name :data:`DRIVER`.
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
    SQLiteDialect_aiosqlite,
)
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

T = TypeVar("T")

#: The ``sqlite+<driver>`` name this dialect is registered under.
DRIVER = "blobstore_aiosqlite"


class _Outcome:
    """What one statement left behind on its (closed) sqlite3 cursor."""

    __slots__ = ("description", "lastrowid", "rowcount", "rows")

    def __init__(self, cursor: sqlite3.Cursor, rows: list[Any]) -> None:
        self.description = cursor.description
        self.rowcount = cursor.rowcount
        self.lastrowid = cursor.lastrowid
        self.rows = rows


def _execute(connection: sqlite3.Connection, operation: str, parameters: Any) -> _Outcome:
    """On the connection's thread: run one statement to the end and close its cursor."""
    cursor = connection.cursor()
    try:
        cursor.execute(operation, () if parameters is None else parameters)
        return _Outcome(cursor, cursor.fetchall() if cursor.description else [])
    finally:
        cursor.close()


def _executemany(connection: sqlite3.Connection, operation: str, parameters: Any) -> _Outcome:
    """On the connection's thread: run one statement for every parameter set and close its cursor."""
    cursor = connection.cursor()
    try:
        cursor.executemany(operation, parameters)
        return _Outcome(cursor, [])
    finally:
        cursor.close()


async def on_thread(connection: Any, work: Callable[..., T], *args: Any) -> T:
    """Run ``work(sqlite3_connection, *args)`` on the thread of ``connection`` (an ``aiosqlite.Connection``),
    as one hand-off: the way to run several statements for the price of one wake-up."""
    return await connection._execute(work, connection._conn, *args)  # type: ignore[no-any-return]


class OneHopCursor(AsyncAdapt_aiosqlite_cursor):
    """A buffered cursor whose ``execute`` is a single call on aiosqlite's thread."""

    __slots__ = ("_outcome",)
    _awaitable_cursor_close = False  # there is no driver cursor left open to close

    def __init__(self, adapt_connection: AsyncAdapt_aiosqlite_connection) -> None:
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]  # each statement opens and closes its own
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._outcome: _Outcome | None = None

    @property
    def description(self) -> Any:
        return None if self._outcome is None else self._outcome.description

    @property
    def rowcount(self) -> int:
        return -1 if self._outcome is None else self._outcome.rowcount

    @property
    def lastrowid(self) -> Any:
        return None if self._outcome is None else self._outcome.lastrowid

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        self._run(_execute, operation, parameters)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> Any:
        self._run(_executemany, operation, seq_of_parameters)

    def _run(self, statement: Any, operation: Any, parameters: Any) -> None:
        try:
            self._outcome = await_(self._on_thread(statement, operation, parameters))
        except Exception as error:
            self._adapt_connection._handle_exception(error)
        self._rows = collections.deque(self._outcome.rows)

    async def _on_thread(self, statement: Any, operation: Any, parameters: Any) -> _Outcome:
        async with self._adapt_connection._execute_mutex:
            return await on_thread(self._connection, statement, operation, parameters)


class OneHopConnection(AsyncAdapt_aiosqlite_connection):
    """The aiosqlite adapter with :class:`OneHopCursor`, and no rollback round trip outside a transaction."""

    __slots__ = ()
    _cursor_cls = OneHopCursor  # type: ignore[assignment]  # a subclass; mypy reads the base attribute as invariant

    def rollback(self) -> None:
        raw = self._connection._connection
        if raw is not None and not raw.in_transaction:
            return  # nothing to undo: each statement outside BEGIN committed on its own
        super().rollback()


class OneHopDBAPI(AsyncAdapt_aiosqlite_dbapi):
    """The DBAPI shim handing out :class:`OneHopConnection`."""

    def connect(self, *arg: Any, **kw: Any) -> OneHopConnection:
        return OneHopConnection(self, super().connect(*arg, **kw)._connection)


class OneHopDialect(SQLiteDialect_aiosqlite):
    """SQLAlchemy's aiosqlite dialect over :class:`OneHopDBAPI`."""

    driver = DRIVER
    supports_statement_cache = True

    @classmethod
    def import_dbapi(cls) -> OneHopDBAPI:
        return OneHopDBAPI(__import__("aiosqlite"), __import__("sqlite3"))


registry.register(f"sqlite.{DRIVER}", __name__, "OneHopDialect")
