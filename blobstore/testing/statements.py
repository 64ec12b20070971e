"""Recording the SQL a store sends: ``with statements_sent(store) as sent: ...`` then ``len(sent)``.

:func:`sql_sent` records everything the store's engine sends, :func:`statements_sent` leaves out the
engine's own ``BEGIN`` (so counts are of the store's statements), and :func:`begins_sent` keeps only those
(on SQLite a write transaction's ``BEGIN IMMEDIATE`` shows there). Each list fills while the block runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from sqlalchemy import event

if TYPE_CHECKING:
    from blobstore.store import BlobStore


def _is_begin(statement: str) -> bool:
    return statement.lstrip().upper().startswith("BEGIN")


@contextlib.contextmanager
def _recorded(store: BlobStore, keep: Callable[[str], bool]) -> Iterator[list[str]]:
    """The SQL texts the store's engine sends while the block runs, those ``keep`` accepts, as sent."""
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if keep(statement):
            sent.append(statement)

    engine = store.database.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


def sql_sent(store: BlobStore) -> contextlib.AbstractContextManager[list[str]]:
    """Every SQL text the store sends while the block runs, BEGIN included."""
    return _recorded(store, lambda _statement: True)


def statements_sent(store: BlobStore) -> contextlib.AbstractContextManager[list[str]]:
    """Every SQL statement the store sends while the block runs (not the engine's own BEGIN)."""
    return _recorded(store, lambda statement: not _is_begin(statement))


def begins_sent(store: BlobStore) -> contextlib.AbstractContextManager[list[str]]:
    """Every BEGIN the store's engine sends while the block runs (on SQLite, BEGIN IMMEDIATE for a write)."""
    return _recorded(store, _is_begin)
