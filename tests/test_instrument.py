"""blobstore.instrument: an open store's storage operations and database statements reach an observer, with
bounded labels, until the instrumentation is removed."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from blobstore import BlobStore
from blobstore.instrument import Outcome, StatementKind, instrument, statement_kind
from blobstore.storage.timed import TimedStorage

DATA = b"instrumented " * 100


@dataclass
class Recorder:
    storage: list[tuple[str, Outcome, float]] = field(default_factory=list)
    database: list[tuple[StatementKind, Outcome, float]] = field(default_factory=list)

    def storage_operation(self, operation: str, outcome: Outcome, seconds: float) -> None:
        self.storage.append((operation, outcome, seconds))

    def database_statement(self, kind: StatementKind, outcome: Outcome, seconds: float) -> None:
        self.database.append((kind, outcome, seconds))


async def test_puts_gets_and_gc_are_observed_until_removed(store: BlobStore) -> None:
    original = store.storage
    recorder = Recorder()
    instrumented = instrument(store, recorder)
    assert isinstance(store.storage, TimedStorage)
    acme = store.tenant("acme")
    await acme.put("k", DATA)
    assert await acme.get("k") == DATA
    await store.gc()
    operations = {(operation, outcome) for operation, outcome, _ in recorder.storage}
    assert {("write", "ok"), ("read", "ok"), ("list", "ok")} <= operations
    kinds = {kind for kind, outcome, _ in recorder.database if outcome == "ok"}
    assert {"select", "insert"} <= kinds
    assert all(seconds >= 0 for *_, seconds in recorder.storage + recorder.database)

    instrumented.remove()
    assert store.storage is original
    seen = (len(recorder.storage), len(recorder.database))
    await acme.put("other", DATA + b"!")
    assert await acme.get("other") == DATA + b"!"
    assert (len(recorder.storage), len(recorder.database)) == seen


async def test_a_failing_statement_is_observed_as_an_error(store: BlobStore) -> None:
    recorder = Recorder()
    instrumented = instrument(store, recorder)
    try:
        async with store.database.engine.connect() as conn:
            with pytest.raises(Exception, match="no_such_table"):
                await conn.exec_driver_sql("SELECT * FROM no_such_table")
    finally:
        instrumented.remove()
    observed = [(kind, outcome) for kind, outcome, _ in recorder.database]
    assert ("select", "error") in observed  # (SQLite's BEGIN comes first, as an "other")
    assert ("select", "ok") not in observed


@pytest.mark.parametrize(
    ("statement", "kind"),
    [
        ("SELECT 1", "select"),
        ("\n  insert INTO refs VALUES (1)", "insert"),
        ("UPDATE blobs SET refcount = 0", "update"),
        ("DELETE FROM refs", "delete"),
        ("WITH x AS (SELECT 1) SELECT * FROM x", "other"),
        ("BEGIN IMMEDIATE", "other"),
        ("", "other"),
    ],
)
def test_statements_are_labelled_by_their_verb_only(statement: str, kind: StatementKind) -> None:
    assert statement_kind(statement) == kind
