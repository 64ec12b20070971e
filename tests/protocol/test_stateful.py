"""A Hypothesis state machine drives the store against a plain dict model, checking invariants after every step.

Steps: put, put of bytes another key already holds (dedup), copy, replace,
delete, GC past grace, compact of a blob made old (stored as before frames),
and crash-restart (a put, delete or GC whose process dies at a chosen point,
after which the store is reopened on the same database and storage). The
machine is synchronous; it runs the async store on an event loop of its own
(the sync shim). It runs on SQLite + local directory and on PostgreSQL + S3,
each example on a fresh store.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from blobstore import BlobStore, NotFound, Settings
from blobstore.protocol.uploads import Uploader
from blobstore.testing.faults import Fault, FaultyStorage, SimulatedCrash
from tests.support.digests import digest_of
from tests.support.stores import FakeClock
from tests.support.workers import data_objects, invariant_violations, make_raw, rows, scalar

T = TypeVar("T")

GRACE = 3600.0
#: The put's commit step, which a crash at put-after-commit wraps while it is armed.
_PROMOTE = Uploader._promote
TENANTS = ("acme", "globex")
KEYS = ("a", "b", "dir/c")
#: A few values, so that puts keep meeting bytes that are already stored.
POOL = (b"", b"alpha", b"alpha\0", b"beta" * 100, bytes(range(256)) * 40)
CRASH_POINTS = (
    "put-after-intent",
    "put-after-upload",
    "put-after-commit",
    "delete-after-commit",
    "gc-after-tombstone",
    "gc-after-storage-delete",
)
#: Bounds the run: at most MAX_EXAMPLES * STEPS steps per deployment.
MAX_EXAMPLES = 6
STEPS = 25

Ref = tuple[str, str]
refs = st.tuples(st.sampled_from(TENANTS), st.sampled_from(KEYS))
values = st.sampled_from(POOL)


class StoreMachine(RuleBasedStateMachine):
    """The store against ``model``: {(tenant, key): bytes}."""

    #: Steps run by every machine of the test session, per deployment (for the report).
    steps: ClassVar[dict[str, int]] = {}
    #: Crashes that really happened, per deployment and crash point.
    crashes: ClassVar[dict[tuple[str, str], int]] = {}

    def __init__(self, deployment: str, fresh_settings: Callable[[], Awaitable[Settings]]) -> None:
        super().__init__()
        self.deployment = deployment
        self.runner = asyncio.Runner()
        self.clock = FakeClock()
        self.settings = self.run(fresh_settings())
        self.store = self.run(self.open())
        self.model: dict[Ref, bytes] = {}
        self.fresh = 0

    # --- the sync shim ---------------------------------------------------------------------------

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(coroutine)

    async def open(self) -> BlobStore:
        return await BlobStore.open(self.settings, clock=self.clock, migrate_schema=True)

    def teardown(self) -> None:
        """A last GC past grace must leave no leak, whatever the steps left behind; then close."""
        try:
            self.clock.advance(GRACE + 1)
            self.run(self.store.gc())
            self.check_nothing_leaked()
        finally:
            Uploader._promote = _PROMOTE  # type: ignore[method-assign]
            self.run(self.store.close())
            self.runner.close()

    def step(self) -> None:
        StoreMachine.steps[self.deployment] = StoreMachine.steps.get(self.deployment, 0) + 1

    def held_by(self, tenant: str, data: bytes) -> bool:
        return any(t == tenant and value == data for (t, _), value in self.model.items())

    def put(self, ref: Ref, data: bytes) -> None:
        tenant, key = ref
        deduplicated = self.held_by(tenant, data)
        info = self.run(self.store.tenant(tenant).put(key, data))
        assert (info.digest, info.size, info.deduplicated) == (digest_of(data), len(data), deduplicated)
        self.model[ref] = data

    # --- rules -----------------------------------------------------------------------------------

    @rule(ref=refs, data=values)
    def put_new(self, ref: Ref, data: bytes) -> None:
        """Put a pool value (new, or already stored by anyone)."""
        self.step()
        self.put(ref, data)

    @precondition(lambda self: self.model)
    @rule(pick=st.integers(0, 1000), ref=refs)
    def put_same_bytes(self, pick: int, ref: Ref) -> None:
        """Put bytes that some key already holds: no upload, one more reference."""
        self.step()
        uploads_before = self.run(data_objects(self.store))
        self.put(ref, self.model[sorted(self.model)[pick % len(self.model)]])
        assert self.run(data_objects(self.store)) == uploads_before

    @rule(source=refs, destination=st.sampled_from(KEYS))
    def copy(self, source: Ref, destination: str) -> None:
        """Copy within a tenant; copying a missing key is NotFound and changes nothing."""
        self.step()
        tenant = source[0]
        target = (tenant, destination)
        if source in self.model:
            self.run(self.store.tenant(tenant).copy(source[1], target[1]))
            self.model[target] = self.model[source]
        else:
            with pytest.raises(NotFound):
                self.run(self.store.tenant(tenant).copy(source[1], target[1]))

    @precondition(lambda self: self.model)
    @rule(pick=st.integers(0, 1000), data=values)
    def replace(self, pick: int, data: bytes) -> None:
        """Put over an existing key."""
        self.step()
        self.put(sorted(self.model)[pick % len(self.model)], data)

    @rule(ref=refs)
    def delete(self, ref: Ref) -> None:
        """Delete a key; True exactly when it existed."""
        self.step()
        assert self.run(self.store.tenant(ref[0]).delete(ref[1])) == (ref in self.model)
        self.model.pop(ref, None)

    @rule()
    def gc(self) -> None:
        """GC past grace: afterwards storage holds exactly the objects of referenced blobs."""
        self.step()
        self.clock.advance(GRACE + 1)
        self.run(self.store.gc())
        self.check_nothing_leaked()

    @precondition(lambda self: self.model)
    @rule(pick=st.integers(0, 1000))
    def compact_an_old_blob(self, pick: int) -> None:
        """Store a key's blob as before frames, then compact it: it is framed again, every key reads back, and
        the old object waits for GC past grace."""
        self.step()
        ref = sorted(self.model)[pick % len(self.model)]
        self.run(make_raw(self.store, *ref, self.model[ref]))
        stats = self.run(self.store.compact())
        assert (stats.blobs_rewritten, stats.failures) == (1, [])
        assert self.run(scalar(self.store, "SELECT COUNT(*) FROM blobs WHERE frames IS NULL AND state = 'live'")) == 0

    @rule(point=st.sampled_from(CRASH_POINTS), ref=refs, data=values, fresh=st.booleans())
    def crash_restart(self, point: str, ref: Ref, data: bytes, fresh: bool) -> None:
        """Run an operation whose process dies at ``point``, then reopen the store: what was committed
        stays, what was not leaves no visible trace."""
        self.step()
        self.fresh += 1
        if fresh:  # bytes nobody holds, so the put must upload
            data = f"fresh {self.fresh}".encode()
        if point.startswith("gc"):  # make sure there is something to reclaim
            scratch = self.store.tenant("scratch")
            self.run(scratch.put("garbage", f"garbage {self.fresh}".encode()))
            self.run(scratch.delete("garbage"))
        faulty = self.arm(point)
        crashed = False
        try:
            if point.startswith("put"):
                self.put(ref, data)
            elif point.startswith("delete"):
                self.run(self.store.tenant(ref[0]).delete(ref[1]))
                self.model.pop(ref, None)
            else:
                self.clock.advance(GRACE + 1)
                self.run(self.store.gc())
        except SimulatedCrash:
            crashed = True
        assert crashed == faulty.crashed
        if crashed:
            StoreMachine.crashes[self.deployment, point] = StoreMachine.crashes.get((self.deployment, point), 0) + 1
        if crashed and point in ("put-after-commit", "delete-after-commit"):
            # The transaction committed: the operation took effect though nobody heard of it.
            if point == "put-after-commit":
                self.model[ref] = data
            else:
                self.model.pop(ref, None)
        self.run(self.restart(faulty))

    def arm(self, point: str) -> FaultyStorage:
        """Swap in storage that dies at ``point``, and a database that dies with it."""
        faulty = FaultyStorage(self.store.storage)
        crash = SimulatedCrash(f"killed at {point}")
        if point == "put-after-intent":
            faulty.inject(Fault("write", error=crash, key_prefix="data/"))
        elif point == "put-after-upload":
            faulty.inject(Fault("write", error=crash, phase="after", key_prefix="data/"))
        elif point == "gc-after-tombstone":
            faulty.inject(Fault("delete_many", error=crash))
        elif point == "gc-after-storage-delete":
            faulty.inject(Fault("delete_many", error=crash, phase="after"))
        real_transaction = self.store.database.transaction

        async def transaction(work: Callable[[Any], Awaitable[T]]) -> T:
            if faulty.crashed:
                raise SimulatedCrash("the database is gone with the process")
            result = await real_transaction(work)
            if point == "delete-after-commit" and getattr(work, "__name__", "") == "work":
                crashed()
            return result

        async def promote(uploader: Uploader, *args: Any) -> Any:
            outcome = await _PROMOTE(uploader, *args)
            if point == "put-after-commit":  # the put's commit step, on whichever path it ran
                crashed()
            return outcome

        def crashed() -> None:
            faulty.crashed = True
            raise SimulatedCrash(f"killed at {point}")

        self.store.core = replace(self.store.core, storage=faulty)
        self.store.database.transaction = transaction  # type: ignore[method-assign]
        Uploader._promote = promote  # type: ignore[method-assign]
        return faulty

    async def restart(self, faulty: FaultyStorage) -> None:
        Uploader._promote = _PROMOTE  # type: ignore[method-assign]
        await self.store.core.egress.stop()  # the killed process's background writer died with it
        await self.store.database.dispose()
        await faulty.inner.close()
        self.store = await self.open()

    # --- invariants ------------------------------------------------------------------------------

    @invariant()
    def every_key_reads_back_and_every_count_is_exact(self) -> None:
        """Refs are exactly the model's keys, each reads back its bytes; refcounts and usage are exact."""
        self.run(self.check())

    async def check(self) -> None:
        found = await rows(
            self.store,
            "SELECT t.name, r.key, b.digest FROM refs r JOIN tenants t ON t.id = r.tenant_id "
            "JOIN blobs b ON b.id = r.blob_id",
        )
        assert {(t, k): d for t, k, d in found} == {ref: digest_of(data) for ref, data in self.model.items()}
        for (tenant, key), data in self.model.items():
            assert await self.store.tenant(tenant).get(key) == data
        assert await invariant_violations(self.store, quiescent=False) == []
        usage = await rows(self.store, "SELECT name, used_bytes, used_objects FROM tenants")
        for name, used_bytes, used_objects in usage:
            held = [data for (t, _), data in self.model.items() if t == name]
            assert (used_bytes, used_objects) == (sum(map(len, held)), len(held))

    def check_nothing_leaked(self) -> None:
        async def check() -> None:
            objects = await data_objects(self.store)
            referenced = await scalar(self.store, "SELECT COUNT(*) FROM blobs WHERE state = 'live' AND refcount > 0")
            assert len(objects) == referenced == len(set(self.model.values()))
            assert await invariant_violations(self.store) == []

        self.run(check())


@pytest.fixture
def fresh_settings(
    settings_for: Callable[[str], Awaitable[Settings]], tmp_path: Path, deployment: str
) -> Callable[[], Awaitable[Settings]]:
    """Settings of a brand-new store on the deployment: an emptied database and unused storage."""

    async def fresh() -> Settings:
        base = await settings_for(deployment)  # empties the PostgreSQL database
        name = uuid.uuid4().hex[:12]
        if base.storage_url.startswith("s3://"):
            bucket = base.storage_url.removeprefix("s3://").split("/")[0]
            return replace(base, storage_url=f"s3://{bucket}/{name}")
        home = tmp_path / name
        url = base.database_url if deployment.startswith("postgres") else f"sqlite+aiosqlite:///{home / 'db'}"
        return replace(base, home=home, database_url=url, storage_url=(home / "blobs").as_uri())

    return fresh


def test_the_store_keeps_its_model_through_random_operations_and_crashes(
    deployment: str, fresh_settings: Callable[[], Awaitable[Settings]]
) -> None:
    """Random puts, dedup puts, copies, replaces, deletes, GCs, compacts and crash-restarts never break an
    invariant."""
    before = StoreMachine.steps.get(deployment, 0)
    run_state_machine_as_test(
        lambda: StoreMachine(deployment, fresh_settings),
        settings=settings(
            max_examples=MAX_EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],  # no shrinking: each example costs a fresh store
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
    executed = StoreMachine.steps[deployment] - before
    crashes = {point: n for (where, point), n in StoreMachine.crashes.items() if where == deployment}
    print(f"\nstate machine on {deployment}: {executed} steps in {MAX_EXAMPLES} examples; crashes: {crashes}")
    assert executed >= MAX_EXAMPLES
