"""Timing a store's storage operations and database statements, for an observer to record.

A store is timed from the start or not at all: ``BlobStore.open(..., observer=observer)``
builds it on :func:`timed_storage` (a :class:`~blobstore.storage.timed.TimedStorage`
around its storage) and calls :func:`time_statements` on its database's engine,
before the store exists. A store is never altered once open. The observer hears of

* every storage operation: its name (``write``, ``read``, ``stat``,
  ``delete_many``, ``list``, ...), its outcome (``ok``/``error``) and seconds;
* every database statement: its kind (``select``, ``insert``, ``update``,
  ``delete`` or ``other``), its outcome and seconds.

Labels stay few and never carry keys, tenants or SQL text. The observer is called on the event loop's thread
and must return quickly (the HTTP service records into Prometheus metrics).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Literal, Protocol

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, ExceptionContext

from blobstore.storage.timed import Outcome, TimedStorage

if TYPE_CHECKING:
    from blobstore.db.engine import Database
    from blobstore.storage import ObjectStorage

__all__ = ["Observer", "Outcome", "StatementKind", "statement_kind", "time_statements", "timed_storage"]

StatementKind = Literal["select", "insert", "update", "delete", "other"]
_KINDS: dict[str, StatementKind] = {"select": "select", "insert": "insert", "update": "update", "delete": "delete"}


class Observer(Protocol):
    """Records what a store built with it times (see the module docstring)."""

    def storage_operation(self, operation: str, outcome: Outcome, seconds: float) -> None:
        """One storage operation finished."""

    def database_statement(self, kind: StatementKind, outcome: Outcome, seconds: float) -> None:
        """One database statement finished."""


def statement_kind(statement: str) -> StatementKind:
    """The kind of an SQL statement, from its first word (``other`` for anything but the four DML verbs)."""
    first = statement.lstrip().split(None, 1)[:1]
    return _KINDS.get(first[0].lower(), "other") if first else "other"


def timed_storage(storage: ObjectStorage, observer: Observer) -> TimedStorage:
    """``storage`` wrapped so that ``observer`` hears of each of its operations."""
    return TimedStorage(storage, observer.storage_operation)


def time_statements(database: Database, observer: Observer) -> None:
    """Report every statement ``database``'s engine runs to ``observer``, for as long as the engine lives."""
    _StatementTimer(observer).listen(database.engine.sync_engine)


class _StatementTimer:
    """Times each statement from SQLAlchemy's cursor events."""

    def __init__(self, observer: Observer) -> None:
        self._observer = observer
        # Each connection runs one statement at a time: its start time waits in the connection's info under this key.
        self._started_key = f"blobstore.core.instrument.{id(self)}"

    def listen(self, engine: Engine) -> None:
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)
        event.listen(engine, "handle_error", self._failed)

    def _before(self, conn: Connection, _cursor: Any, _statement: str, *_rest: Any) -> None:
        conn.info[self._started_key] = time.perf_counter()

    def _after(self, conn: Connection, _cursor: Any, statement: str, *_rest: Any) -> None:
        self._record(conn, statement, "ok")

    def _failed(self, context: ExceptionContext) -> None:
        if context.connection is not None and context.statement is not None:
            self._record(context.connection, context.statement, "error")

    def _record(self, conn: Connection, statement: str, outcome: Outcome) -> None:
        started = conn.info.pop(self._started_key, None)
        if started is not None:  # an error before the statement ran (connecting, say) times nothing
            self._observer.database_statement(statement_kind(statement), outcome, time.perf_counter() - started)
