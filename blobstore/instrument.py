"""Timing an open store's storage operations and database statements, for an observer to record.

``instrumented = instrument(store, observer)`` replaces ``store.storage`` with a
:class:`~blobstore.storage.timed.TimedStorage` around it and listens to the
store's SQLAlchemy engine; from then on the observer hears of

* every storage operation: its name (``write``, ``read``, ``stat``,
  ``delete_many``, ``list``, ...), its outcome (``ok``/``error``) and seconds;
* every database statement: its kind (``select``, ``insert``, ``update``,
  ``delete`` or ``other``), its outcome and seconds.

Labels stay few and never carry keys, tenants or SQL text. ``instrumented.remove()``
puts the store back as it was. The observer is called on the event loop's thread
and must return quickly (the HTTP service records into Prometheus metrics).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Literal, Protocol

from sqlalchemy import event
from sqlalchemy.engine import Connection, ExceptionContext

from blobstore.storage.timed import Outcome, TimedStorage

if TYPE_CHECKING:
    from blobstore.store import BlobStore

__all__ = ["Instrumented", "Observer", "Outcome", "StatementKind", "instrument", "statement_kind"]

StatementKind = Literal["select", "insert", "update", "delete", "other"]
_KINDS: dict[str, StatementKind] = {"select": "select", "insert": "insert", "update": "update", "delete": "delete"}


class Observer(Protocol):
    """Records what :func:`instrument` times."""

    def storage_operation(self, operation: str, outcome: Outcome, seconds: float) -> None:
        """One storage operation finished."""

    def database_statement(self, kind: StatementKind, outcome: Outcome, seconds: float) -> None:
        """One database statement finished."""


def statement_kind(statement: str) -> StatementKind:
    """The kind of an SQL statement, from its first word (``other`` for anything but the four DML verbs)."""
    first = statement.lstrip().split(None, 1)[:1]
    return _KINDS.get(first[0].lower(), "other") if first else "other"


class Instrumented:
    """The timing :func:`instrument` put on one store."""

    def __init__(self, store: BlobStore, observer: Observer) -> None:
        self._store = store
        self._observer = observer
        self.storage = TimedStorage(store.storage, observer.storage_operation)
        self._engine = store.database.engine.sync_engine
        # Each connection runs one statement at a time: its start time waits in the connection's info under this key.
        self._started_key = f"blobstore.instrument.{id(self)}"
        store.storage = self.storage
        event.listen(self._engine, "before_cursor_execute", self._before)
        event.listen(self._engine, "after_cursor_execute", self._after)
        event.listen(self._engine, "handle_error", self._failed)

    def remove(self) -> None:
        """Stop timing: the store reaches its storage directly again and the engine's listeners are gone."""
        if self._store.storage is self.storage:
            self._store.storage = self.storage.inner
        event.remove(self._engine, "before_cursor_execute", self._before)
        event.remove(self._engine, "after_cursor_execute", self._after)
        event.remove(self._engine, "handle_error", self._failed)

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


def instrument(store: BlobStore, observer: Observer) -> Instrumented:
    """Time ``store``'s storage operations and database statements for ``observer`` (see the module docstring)."""
    return Instrumented(store, observer)
