"""Counting the SQL a store sends: ``with statements_sent(store) as sent: ...`` then ``len(sent)``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from sqlalchemy import event

if TYPE_CHECKING:
    from blobstore.store import BlobStore


@contextlib.contextmanager
def statements_sent(store: BlobStore) -> Iterator[list[str]]:
    """Every SQL statement the store sends while the block runs (not the engine's own BEGIN)."""
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.lstrip().upper().startswith("BEGIN"):
            sent.append(statement)

    engine = store.database.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)
