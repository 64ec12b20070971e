"""blobstore.core.instrument: a store built with an observer (BlobStore.open(..., observer=...)) has its storage
operations and database statements reach it, with bounded labels; the HTTP app builds its own store that way
and never alters a store passed in."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from blobstore import BlobStore
from blobstore.core.instrument import Outcome, StatementKind, statement_kind
from blobstore.server import create_app
from blobstore.storage.timed import TimedStorage
from tests.support.stores import FakeClock

DATA = b"instrumented " * 100


@dataclass
class Recorder:
    storage: list[tuple[str, Outcome, float]] = field(default_factory=list)
    database: list[tuple[StatementKind, Outcome, float]] = field(default_factory=list)

    def storage_operation(self, operation: str, outcome: Outcome, seconds: float) -> None:
        self.storage.append((operation, outcome, seconds))

    def database_statement(self, kind: StatementKind, outcome: Outcome, seconds: float) -> None:
        self.database.append((kind, outcome, seconds))


async def test_a_store_built_with_an_observer_times_its_storage_and_statements(
    store: BlobStore, clock: FakeClock
) -> None:
    recorder = Recorder()
    async with await BlobStore.open(store.settings, clock=clock, observer=recorder) as timed:
        assert isinstance(timed.storage, TimedStorage)
        acme = timed.tenant("acme")
        await acme.put("k", DATA)
        assert await acme.get("k") == DATA
        await timed.gc()
    operations = {(operation, outcome) for operation, outcome, _ in recorder.storage}
    assert {("write", "ok"), ("read", "ok"), ("list", "ok")} <= operations
    kinds = {kind for kind, outcome, _ in recorder.database if outcome == "ok"}
    assert {"select", "insert"} <= kinds
    assert all(seconds >= 0 for *_, seconds in recorder.storage + recorder.database)


async def test_a_store_built_without_an_observer_is_not_timed(store: BlobStore) -> None:
    assert not isinstance(store.storage, TimedStorage)


async def test_a_failing_statement_is_observed_as_an_error(store: BlobStore, clock: FakeClock) -> None:
    recorder = Recorder()
    timed = await BlobStore.open(store.settings, clock=clock, observer=recorder)
    async with timed, timed.database.engine.connect() as conn:
        with pytest.raises(Exception, match="no_such_table"):
            await conn.exec_driver_sql("SELECT * FROM no_such_table")
    observed = [(kind, outcome) for kind, outcome, _ in recorder.database]
    assert ("select", "error") in observed  # (SQLite's BEGIN comes first, as an "other")
    assert ("select", "ok") not in observed


async def test_the_app_times_the_store_it_opens(store: BlobStore, clock: FakeClock) -> None:
    app = create_app(settings=store.settings, clock=clock)
    async with app.router.lifespan_context(app):
        assert isinstance(app.state.blobstore.storage, TimedStorage)


async def test_the_app_leaves_a_store_passed_in_as_it_was(store: BlobStore) -> None:
    """A store handed to the app is never mutated: no wrapper swapped in, no listener added to its engine."""
    storage = store.storage
    engine = store.database.engine.sync_engine
    listeners = len(engine.dispatch.before_cursor_execute)
    app = create_app(store)
    async with app.router.lifespan_context(app):
        assert store.storage is storage
        assert len(engine.dispatch.before_cursor_execute) == listeners
    assert store.storage is storage


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
