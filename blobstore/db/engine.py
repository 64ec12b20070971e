"""Engine setup and the retrying transaction runner.

Every write runs as one short transaction through :meth:`Database.transaction`
(the hot path's on the driver connection, through :meth:`Database.on_driver`),
which replays the whole transaction when the database reports a transient
conflict (deadlock, serialization failure, a lost unique-insert race, a locked
SQLite file, a dropped connection), so callers never see one. An outage (the
server refuses connections, is shutting down, the file is read-only or the disk
full) is retried with backoff for the transient kinds, then surfaces as one
:class:`~blobstore.errors.StorageUnavailable` naming the database; pooled
connections that died with the server are replaced, so the store recovers by
itself when the database returns.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Connection, Dialect, Engine, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry, PoolProxiedConnection
from sqlalchemy.util import greenlet_spawn

from blobstore.db import sqlite_driver
from blobstore.db.urls import split_options
from blobstore.errors import BlobStoreError, StorageUnavailable
from blobstore.extras import needs

T = TypeVar("T")

#: PostgreSQL SQLSTATEs after which replaying the transaction succeeds: conflicts, and a server that is
#: restarting or out of connection slots (class 08 connection exceptions are matched by prefix).
_RETRYABLE_SQLSTATES = {"40001", "40P01", "23505", "55P03", "57P01", "57P02", "57P03", "53300"}
_MAX_ATTEMPTS = 12
#: Back-off between attempts: ``min(_MAX_DELAY, _BASE_DELAY * 2**attempt)`` seconds, times a random factor.
_BASE_DELAY, _MAX_DELAY = 0.005, 1.0
#: Execution option of :meth:`Database.read` connections on SQLite: no ``BEGIN IMMEDIATE`` (each statement autocommits).
_READ_ONLY = "blobstore_read_only"


class Database:
    """An async engine plus the transaction runner every query goes through."""

    def __init__(self, url: str, *, pool_size: int = 5) -> None:
        self.url = url
        #: The URL as messages show it: never with a password.
        self.shown_url = make_url(url).render_as_string(hide_password=True)
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            # One connection per process: SQLite admits one writer at a time anyway, and queueing for the
            # pooled connection beats several connections sleeping in SQLite's busy back-off (5x slower
            # for 32 concurrent puts). No transaction here ever opens another while it runs.
            # An in-memory database lives exactly as long as that one connection (its pool is named
            # explicitly: SQLAlchemy's default for :memory: shares one connection between transactions).
            self.engine: AsyncEngine = create_async_engine(
                make_url(url).set(drivername=f"sqlite+{sqlite_driver.DRIVER}"),
                connect_args={"timeout": 60},
                poolclass=AsyncAdaptedQueuePool,
                pool_size=1,
                max_overflow=0,
                pool_timeout=600,
            )
            _configure_sqlite(self.engine)
            read_options: dict[str, Any] = {_READ_ONLY: True}
        else:
            # No pre-ping round trip per checkout: a stale pooled connection fails its first statement,
            # is invalidated, and the transaction is replayed on a fresh one (see transaction()).
            # libpq-style ?sslmode= and certificate options, and ?pooler=, become driver arguments.
            engine_url, connect_args = split_options(url)
            with needs("postgres", "a PostgreSQL database (BLOBSTORE_DATABASE_URL)"):
                self.engine = create_async_engine(
                    engine_url, connect_args=connect_args, pool_size=pool_size, max_overflow=2 * pool_size
                )
            read_options = {"isolation_level": "AUTOCOMMIT"}
        #: The same pool, its connections set up for :meth:`read` once rather than per read.
        self._reader = self.engine.execution_options(**read_options)

    async def transaction(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run ``work`` in one transaction, replaying it on transient conflicts; commit on return.

        ``work`` may run more than once, so it must not have effects outside the
        transaction. Exceptions it raises roll the transaction back and propagate.
        """
        return await self._replayed(lambda: _run_to_the_end(self._attempt(work)))

    async def read(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run read-only ``work`` outside any write transaction, replaying it like :meth:`transaction`.

        Each statement runs on its own and sees what was committed before it: on
        SQLite without ``BEGIN IMMEDIATE`` (a reader never waits for, or blocks, a
        writer of another process), on PostgreSQL in autocommit (no BEGIN and
        COMMIT round trips). ``work`` must only read; one statement sees one snapshot.
        """
        return await self._replayed(lambda: self._read_attempt(work))

    async def snapshot(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run read-only ``work`` in one read-only transaction whose statements all see one snapshot,
        replaying it like :meth:`transaction`: for figures read by several queries that must agree.

        On SQLite a deferred ``BEGIN`` (no write lock: in WAL mode the snapshot is fixed by the first
        read and writers of other connections go on); on PostgreSQL ``REPEATABLE READ, READ ONLY``
        (READ COMMITTED would give each statement a snapshot of its own). ``work`` must only read.
        """
        return await self._replayed(lambda: _run_to_the_end(self._snapshot_attempt(work)))

    async def on_driver(self, work: Callable[[Driver], Awaitable[T]]) -> T:
        """Run ``work`` on a pooled connection's driver connection (aiosqlite's or asyncpg's), replayed like
        :meth:`transaction`: the hot path's way past SQLAlchemy's per-statement layers.

        ``work`` opens and ends any transaction it needs itself (the connection comes in autocommit, on
        SQLite outside any ``BEGIN``) and must not leave one open, nor any session state behind (pgbouncer
        in transaction mode may hand the next transaction another server). This is the one place driver
        errors are translated: into SQLAlchemy's exceptions, exactly as SQLAlchemy's own layer raises
        them, so conflicts are replayed and outages become StorageUnavailable as for every other query;
        a connection the driver lost is invalidated, not pooled again.
        """
        return await self._replayed(lambda: _run_to_the_end(self._driver_attempt(work)))

    async def _driver_attempt(self, work: Callable[[Driver], Awaitable[T]]) -> T:
        # Straight from the pool: no Connection, no execution options, no events but the pool's own.
        dialect = self.engine.dialect
        try:
            pooled = await greenlet_spawn(self.engine.sync_engine.raw_connection)
        except dialect.loaded_dbapi.Error as exc:  # as SQLAlchemy's own connect raises it
            invalidated = bool(dialect.is_disconnect(exc, None, None))
            raise DBAPIError.instance(
                None, None, exc, dialect.loaded_dbapi.Error, connection_invalidated=invalidated, dialect=dialect
            ) from exc
        try:
            return await work(Driver(pooled.driver_connection, self.engine.sync_engine, pooled))
        except BlobStoreError:
            raise
        except Exception as exc:
            raise await _translated(dialect, pooled, exc) from exc
        finally:
            await greenlet_spawn(pooled.close)  # back to the pool, or gone if invalidated

    async def _replayed(self, attempt: Callable[[], Awaitable[T]]) -> T:
        for attempt_number in range(1, _MAX_ATTEMPTS + 1):
            try:
                return await attempt()
            except BlobStoreError:
                raise
            except DBAPIError as exc:
                if attempt_number == _MAX_ATTEMPTS or not is_transient(exc):
                    if is_transient(exc) or isinstance(exc, OperationalError):
                        raise StorageUnavailable(f"database {self.shown_url} failed: {exc.orig}") from exc
                    raise
            except (OSError, TimeoutError) as exc:  # the server refused or dropped the connection
                if attempt_number == _MAX_ATTEMPTS:
                    raise StorageUnavailable(f"cannot reach the database {self.shown_url}: {exc}") from exc
            await asyncio.sleep(min(_MAX_DELAY, _BASE_DELAY * 2**attempt_number) * random.random())
        raise AssertionError("unreachable")

    async def _attempt(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        async with self.engine.begin() as conn:
            return await work(conn)

    async def _read_attempt(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        async with self._reader.connect() as conn:
            return await work(conn)

    async def _snapshot_attempt(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        if self.is_sqlite:
            async with self._reader.begin() as conn:
                await conn.exec_driver_sql("BEGIN")
                return await work(conn)
        async with self.engine.begin() as conn:
            await conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            return await work(conn)

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()


@dataclass(frozen=True)
class Driver:
    """What :meth:`Database.on_driver` hands its work: the driver connection, and a way to report the SQL
    sent on it to the engine's statement listeners (blobstore.core.instrument, blobstore.testing.statements)."""

    #: An ``aiosqlite.Connection`` or an ``asyncpg.Connection``.
    connection: Any
    _engine: Engine
    _pooled: PoolProxiedConnection

    def sent(self, *statements: str) -> None:
        """Report ``statements`` as run, after the fact (each timed as taking no time). Listeners get the
        pooled connection where SQLAlchemy passes a Connection: both carry the connection's ``info``."""
        dispatch = self._engine.dispatch
        if dispatch.before_cursor_execute or dispatch.after_cursor_execute:
            for statement in statements:
                dispatch.before_cursor_execute(self._pooled, None, statement, (), None, False)
                dispatch.after_cursor_execute(self._pooled, None, statement, (), None, False)


async def _translated(dialect: Dialect, pooled: PoolProxiedConnection, exc: Exception) -> Exception:
    """``exc``, raised by the driver under ``pooled``, as SQLAlchemy's own layer raises it: a DBAPIError
    wrapping the error of SQLAlchemy's adapter, the connection invalidated if the driver lost it. Anything
    not from the driver comes back as it is."""
    adapted = pooled.dbapi_connection
    dbapi_error = dialect.loaded_dbapi.Error
    try:
        adapted._handle_exception(exc)  # type: ignore[union-attr]
    except dbapi_error as error:
        adapted_error = error
    except Exception:  # not the driver's: a bug, or an OSError the replay loop handles itself
        if isinstance(exc, OSError):
            await greenlet_spawn(pooled.invalidate, exc)
        return exc
    else:
        raise AssertionError("_handle_exception always raises")
    invalidated = bool(dialect.is_disconnect(adapted_error, adapted, None))
    if invalidated:
        await greenlet_spawn(pooled.invalidate, adapted_error)
    return DBAPIError.instance(
        None, None, adapted_error, dbapi_error, connection_invalidated=invalidated, dialect=dialect
    )


async def _run_to_the_end(attempt: Awaitable[T]) -> T:
    """Await one transaction attempt; if the caller is cancelled meanwhile, let the attempt finish first.

    A transaction cut off mid-statement gets its connection invalidated half-way
    through; with aiosqlite the raw SQLite connection can then linger, holding
    the write lock taken by ``BEGIN IMMEDIATE`` until garbage collection, and
    every other writer (in any process) waits out its busy timeout. Finishing
    the attempt (commit or rollback) returns the connection cleanly.
    """
    task = asyncio.ensure_future(attempt)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.add_done_callback(_retrieve)
        await asyncio.wait([task])
        raise


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark the outcome of an attempt nobody awaits any more as seen."""
    if not task.cancelled():
        task.exception()


def is_transient(exc: DBAPIError) -> bool:
    """True if replaying the transaction that raised ``exc`` can succeed."""
    if exc.connection_invalidated:
        return True
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    if code is not None:
        return str(code) in _RETRYABLE_SQLSTATES or str(code).startswith("08")
    message = str(exc.orig).lower()
    if isinstance(exc, OperationalError):
        return "locked" in message or "busy" in message
    return isinstance(exc, IntegrityError) and "unique" in message


def _configure_sqlite(engine: AsyncEngine) -> None:
    """WAL with full fsync on commit, foreign keys on, and ``BEGIN IMMEDIATE`` for every transaction
    (reads of :meth:`Database.read` take none).

    Taking the write lock at ``BEGIN`` serialises writers up front instead of
    failing them when a read lock cannot be upgraded.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if not conn.get_execution_options().get(_READ_ONLY):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
