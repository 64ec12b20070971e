"""One soak process: mixed calls on the keys it owns (``ops``), a GC loop (``gc``) or an fsck loop (``fsck``).

    python -m benchmarks.soak_worker ops --index 0 --journal DIR/ops-0.jsonl --until UNIX_TIME --seed 1

It opens the store the ``BLOBSTORE_*`` environment names over a
:class:`~blobstore.testing.FaultyStorage` that fails ``--fault-rate`` of the
storage calls with StorageUnavailable (none for ``fsck``, whose findings
must mean corruption), and works until ``--until``. Every call's outcome is
appended to the journal (fsynced) after the call returned; a call that
changes a key gets a ``begin`` record first, so when the process is SIGKILLed
inside it, the next incarnation and the audit know its outcome is unknown.
An ``ops`` process checks every read against its model (see
:mod:`benchmarks.soak_model`), rebuilt from the journal at each start.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import time
import traceback
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

import blobstore
from benchmarks.soak_model import (
    SHARED_VALUES,
    TENANTS,
    Journal,
    Model,
    content,
    digest,
    digest_of,
    keys_of,
    listing,
    match,
    read_journal,
)
from blobstore import AlreadyExists, BlobStore, NotFound, Settings, StorageUnavailable
from blobstore.maintenance.fsck import FsckReport, Problem
from blobstore.storage import ObjectStorage, open_storage_from_url
from blobstore.storage.layout import OBJECT_PREFIX
from blobstore.testing import Fault, FaultyStorage

#: The operations mix of an ``ops`` process (relative weights).
OPERATIONS = {"put": 35, "get": 25, "copy": 12, "delete": 18, "list": 10}
#: Share of puts that store one of the values every worker puts (the rest are unique to the call).
SHARED_PUTS = 0.4
#: fsck findings that only mean GC has not caught up yet while writers run.
PENDING_GC = frozenset({"reclaimable-blob", "orphan-object", "incomplete-upload"})
#: Storage calls that fail, and whether before the real call or after it (it happened; the caller hears otherwise).
FAULTY_CALLS = (("write", "after"), ("read", "before"), ("stat", "before"), ("list", "before"))
FAULTY_CALLS_GC = (*FAULTY_CALLS, ("delete_many", "after"), ("abort_upload", "before"))

PACKAGE = Path(blobstore.__file__).parent

Record = dict[str, Any]


def error_class(exc: BaseException) -> str:
    """The name an error is counted under: the class, qualified unless it is blobstore's or a builtin."""
    kind = type(exc)
    if kind.__module__.startswith("blobstore") or kind.__module__ == "builtins":
        return kind.__name__
    return f"{kind.__module__}.{kind.__name__}"


def where(exc: BaseException) -> str:
    """The innermost line of blobstore's own code the error passed through."""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        path = Path(frame.filename)
        if path.is_relative_to(PACKAGE):
            return f"{path.relative_to(PACKAGE.parent)}:{frame.lineno} in {frame.name}"
    return ""


class StorageFaults:
    """Makes storage calls fail with StorageUnavailable at ``rate``, and counts the failures it caused."""

    def __init__(self, rng: random.Random, rate: float) -> None:
        self.rng = rng
        self.rate = rate
        self.injected = 0

    def wrap(self, inner: ObjectStorage, calls: tuple[tuple[str, str], ...]) -> ObjectStorage:
        if not self.rate:
            return inner
        return FaultyStorage(inner, *(Fault(op, error=self._maybe, phase=phase, times=None) for op, phase in calls))

    def _maybe(self) -> BaseException | None:
        if self.rng.random() >= self.rate:
            return None
        self.injected += 1
        return StorageUnavailable("injected storage fault")

    def take(self) -> int:
        """Failures injected since the last call."""
        count, self.injected = self.injected, 0
        return count


class Worker:
    """Journals each call of one process; subclasses say what the calls are."""

    role = ""

    def __init__(self, args: argparse.Namespace, journal: Journal, incarnation: int) -> None:
        self.args = args
        self.journal = journal
        self.incarnation = incarnation
        self.rng = random.Random(f"{args.seed}/{self.role}/{args.index}/{incarnation}")
        self.faults = StorageFaults(random.Random(self.rng.random()), args.fault_rate)
        self.calls = 0

    def log(self, record: Record) -> None:
        self.journal.append(record)

    async def call(self, record: Record, action: Callable[[], Awaitable[Record]], *, mutation: bool = False) -> None:
        """Run one call: journal ``begin`` (for a mutation), then its end with the outcome ``action`` returns,
        or the class of the error it raised."""
        self.calls += 1
        record = {"id": f"{self.incarnation}.{self.calls}", **record}
        if mutation:
            self.log({"t": "begin", **record})
        self.faults.take()
        try:
            outcome = await action()
        except Exception as exc:
            outcome = {"outcome": "error", "error": error_class(exc), "detail": str(exc)[:300], "where": where(exc)}
        self.log({"t": "end", **record, **outcome, "injected": self.faults.take()})

    async def open(self, settings: Settings) -> BlobStore | None:
        """Open the store, retrying (each failure journaled) until it opens or the time is up."""
        calls = FAULTY_CALLS_GC if self.role == "gc" else FAULTY_CALLS
        store: BlobStore | None = None

        async def attempt() -> Record:
            nonlocal store
            inner = open_storage_from_url(
                settings.storage_url, endpoint_url=settings.s3_endpoint_url, region=settings.s3_region
            )
            store = await BlobStore.open(settings, storage=self.faults.wrap(inner, calls))
            return {"outcome": "ok"}

        while store is None and time.time() < self.args.until:
            await self.call({"op": "open"}, attempt)
            if store is None:
                await asyncio.sleep(0.5)
        return store

    async def run(self, store: BlobStore) -> None:
        while time.time() < self.args.until:
            await self.step(store)

    async def step(self, store: BlobStore) -> None:
        raise NotImplementedError


class Operations(Worker):
    """Random put/get/copy/delete/list calls on this worker's keys, every read checked against the model."""

    role = "ops"

    def __init__(self, args: argparse.Namespace, journal: Journal, incarnation: int, model: Model) -> None:
        super().__init__(args, journal, incarnation)
        self.model = model
        self.keys = keys_of(args.index)

    def log(self, record: Record) -> None:
        super().log(record)
        self.model.apply(record)

    async def step(self, store: BlobStore) -> None:
        op = self.rng.choices(list(OPERATIONS), list(OPERATIONS.values()))[0]
        tenant = store.tenant(self.rng.choice(TENANTS))
        key = self.rng.choice(self.keys)
        record: Record = {"op": op, "tenant": tenant.name, "key": key}
        if op == "put":
            shared = self.rng.random() < SHARED_PUTS
            value = self.rng.choice(SHARED_VALUES) if shared else f"u{self.args.index}.{self.incarnation}.{self.calls}"
            if_absent = self.rng.random() < 0.1

            async def put() -> Record:
                try:
                    info = await tenant.put(key, content(value), if_absent=if_absent)
                except AlreadyExists:
                    return {"outcome": "exists"}
                if info.digest != digest(value):
                    return {"outcome": "ok", "violation": f"put of {tenant.name}/{key} answered digest {info.digest}"}
                return {"outcome": "ok", "deduplicated": info.deduplicated}

            await self.call({**record, "value": value, "if_absent": if_absent}, put, mutation=True)
        elif op == "get":

            async def get() -> Record:
                try:
                    data = await tenant.get(key)
                except NotFound:
                    return {"outcome": "missing", "value": None}
                return {"outcome": "ok", "value": match(digest_of(data), self.model.possible(tenant.name, key))}

            await self.call(record, get)
        elif op == "copy":
            src = self.rng.choice([other for other in self.keys if other != key])

            async def copy() -> Record:
                try:
                    await tenant.copy(src, key)
                except NotFound:
                    return {"outcome": "missing"}
                return {"outcome": "ok"}

            await self.call({**record, "src": src}, copy, mutation=True)
        elif op == "delete":

            async def delete() -> Record:
                return {"outcome": "ok", "existed": await tenant.delete(key)}

            await self.call(record, delete, mutation=True)
        else:
            prefix = f"w{self.args.index}/"

            async def list_keys() -> Record:
                found = await listing(tenant, prefix, limit=self.rng.choice([3, 7, 100]))
                seen = {key: match(found[key], self.model.possible(tenant.name, key)) for key in found}
                strangers = sorted(set(found) - set(self.keys))
                if strangers:
                    return {"outcome": "ok", "listing": seen, "violation": f"list {prefix!r} gave {strangers}"}
                return {"outcome": "ok", "listing": seen}

            await self.call({**record, "key": prefix}, list_keys)


class Collector(Worker):
    """Drain the spool (docs/spool.md), then GC, again and again."""

    role = "gc"

    async def step(self, store: BlobStore) -> None:
        async def drain() -> Record:
            return {"outcome": "ok", "drained": (await store.drain_spool()).blobs_drained}

        if store.settings.spool_dir is not None:
            await self.call({"op": "drain"}, drain)

        async def gc() -> Record:
            stats = await store.gc()
            return {
                "outcome": "ok",
                "reclaimed": stats.blobs_reclaimed,
                "orphans": stats.orphans_deleted,
                "aborted": stats.incomplete_uploads_aborted,
            }

        await self.call({"op": "gc"}, gc)
        await asyncio.sleep(0.5)


class Checker(Worker):
    """fsck --read-data, again and again; any finding but GC's pending work is a violation."""

    role = "fsck"

    async def step(self, store: BlobStore) -> None:
        async def fsck() -> Record:
            report = await store.fsck(read_data=True)
            outcome: Record = {"outcome": "ok", "blobs": report.blobs_checked, "problems": report.problem_counts}
            if any(kind not in PENDING_GC for kind in report.problem_counts):
                outcome["violation"] = await explain(store, report)
            return outcome

        await self.call({"op": "fsck"}, fsck)
        await asyncio.sleep(1.0)


async def explain(store: BlobStore, report: FsckReport) -> str:
    """What fsck found that is not GC's pending work, with the state of each object's row and object now."""
    serious = [problem for problem in report.problems if problem.kind not in PENDING_GC]
    found_for = {problem: await now(store, problem) for problem in serious}
    found = Counter(f"{problem.kind}{state}" for problem, state in found_for.items())
    shown = ", ".join(f"{n} {finding}" for finding, n in found.items())
    counts = {kind: n for kind, n in report.problem_counts.items() if kind not in PENDING_GC}
    text = f"fsck during the run reported {counts}: {shown}"
    if serious:
        first = max(serious, key=lambda problem: "gone" not in found_for[problem])
        text += f"; e.g. {first.kind} {first.subject}: {first.detail}{found_for[first]}"
    return text


async def now(store: BlobStore, problem: Problem) -> str:
    """For a finding about an object: its blob row and object now (tells corruption from a race with GC)."""
    if not problem.subject.startswith(OBJECT_PREFIX):
        return ""

    async def lookup(conn: AsyncConnection) -> Any:
        query = text("SELECT state, refcount FROM blobs WHERE object_key = :k")
        return (await conn.execute(query, {"k": problem.subject})).first()

    row = await store.database.read(lookup)  # retried like the store's own reads: connections get dropped here
    if row is None:
        return " (blob row now gone)"
    stored = "present" if await store.storage.stat(problem.subject) else "MISSING"
    return f" (blob row now {row.state}, {'referenced' if row.refcount else 'unreferenced'}, object now {stored})"


async def work(worker: Worker) -> None:
    store = await worker.open(replace(Settings.from_env(), upload_lease_seconds=worker.args.lease))
    if store is None:
        return
    try:
        await worker.run(store)
    finally:
        await store.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak_worker", description=__doc__.split("\n\n")[0])
    parser.add_argument("role", choices=["ops", "gc", "fsck"])
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--journal", type=Path, required=True)
    parser.add_argument("--until", type=float, required=True, help="Unix time to stop at")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fault-rate", type=float, default=0.02)
    parser.add_argument("--lease", type=float, default=10.0, help="upload lease in seconds")
    args = parser.parse_args(argv)
    if args.role == "fsck":
        args.fault_rate = 0.0
    records = list(read_journal(args.journal))
    incarnation = sum(1 for record in records if record["t"] == "start")
    journal = Journal(args.journal)
    journal.append({"t": "start", "incarnation": incarnation, "pid": os.getpid()})
    worker: Worker
    if args.role == "ops":
        worker = Operations(args, journal, incarnation, Model.replay(args.index, records))
    else:
        worker = Collector(args, journal, incarnation) if args.role == "gc" else Checker(args, journal, incarnation)
    try:
        asyncio.run(work(worker))
    finally:
        journal.close()


if __name__ == "__main__":
    main()
