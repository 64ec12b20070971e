"""The soak's model: deterministic contents, the journal each soak process appends to, and what it allows.

An operations worker owns the keys ``w{index}/k{n}`` in every soak tenant;
nobody else writes them, so replaying its journal tells exactly which values
each of its keys may hold: one value after an acknowledged call, and the
union of before and after for a call whose outcome is unknown (it raised, or
the process was killed inside it). A read narrows the set to what it saw. An
observation outside the set is a violation. A value is a string id whose
bytes :func:`content` derives, or None for "absent".
"""

from __future__ import annotations

import functools
import json
import os
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blobstore import Tenant
from blobstore.core.ingest import new_hasher

TENANTS = ("soak-a", "soak-b", "soak-c")
KEYS_PER_WORKER = 16
#: Values every worker puts, in every tenant: dedup across workers and tenants (``shared-0`` is empty).
SHARED_VALUES = tuple(f"shared-{n}" for n in range(6))
#: Calls that change a key; each gets a ``begin`` record before it starts.
MUTATIONS = frozenset({"put", "delete", "copy"})

Value = str | None
ABSENT: frozenset[Value] = frozenset({None})


def key_of(worker: int, n: int) -> str:
    return f"w{worker}/k{n:02d}"


def keys_of(worker: int) -> list[str]:
    """Every key worker ``worker`` may write (in each tenant)."""
    return [key_of(worker, n) for n in range(KEYS_PER_WORKER)]


def worker_of(key: str) -> int | None:
    """The worker that owns ``key``, or None if no worker would ever write it."""
    head = key.partition("/")[0]
    if head[:1] != "w" or not head[1:].isdigit() or key not in keys_of(int(head[1:])):
        return None
    return int(head[1:])


def content(value: str) -> bytes:
    """The bytes of a value id: mostly small, now and then up to 512 KiB; ``shared-0`` is empty."""
    if value == SHARED_VALUES[0]:
        return b""
    rng = random.Random(value)
    low, high = rng.choices([(1, 4096), (4096, 65536), (65536, 524288)], [6, 3, 1])[0]
    return rng.randbytes(rng.randrange(low, high))


def digest_of(data: bytes) -> str:
    """The digest blobstore gives ``data``."""
    hasher = new_hasher()
    hasher.update(data)
    return str(hasher.hexdigest())


@functools.lru_cache(maxsize=8192)
def digest(value: str) -> str:
    return digest_of(content(value))


def match(found_digest: str, candidates: Iterable[Value]) -> str:
    """The candidate value whose bytes have ``found_digest``, or ``?<digest>`` (a value nobody put)."""
    for value in candidates:
        if value is not None and digest(value) == found_digest:
            return value
    return f"?{found_digest}"


async def listing(tenant: Tenant, prefix: str = "", *, limit: int = 1000) -> dict[str, str]:
    """Every key of ``tenant`` under ``prefix``, with its digest, read page by page."""
    found: dict[str, str] = {}
    after = None
    while True:
        page = await tenant.list(prefix, limit=limit, after=after)
        found.update((info.key, info.digest) for info in page.items)
        if page.next_after is None:
            return found
        after = page.next_after


class Journal:
    """Append-only JSON lines; each record is written and fsynced before :meth:`append` returns."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def append(self, record: dict[str, Any]) -> None:
        os.write(self._fd, (json.dumps(record, separators=(",", ":")) + "\n").encode())
        os.fsync(self._fd)

    def close(self) -> None:
        os.close(self._fd)


def read_journal(path: Path) -> Iterator[dict[str, Any]]:
    """The records of a journal, in order; a last line torn by a SIGKILL is skipped."""
    if not path.exists():
        return
    with path.open() as lines:
        for line in lines:
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                if line.endswith("\n"):
                    raise
                return


@dataclass
class Model:
    """The values each key of one operations worker may hold, and every observation that broke them."""

    worker: int
    states: dict[tuple[str, str], frozenset[Value]] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    #: The ``begin`` record of the mutation whose end is not journaled yet.
    pending: dict[str, Any] | None = None

    @classmethod
    def replay(cls, worker: int, records: Iterable[dict[str, Any]]) -> Model:
        model = cls(worker)
        for record in records:
            model.apply(record)
        model.settle()
        return model

    def possible(self, tenant: str, key: str) -> frozenset[Value]:
        return self.states.get((tenant, key), ABSENT)

    def apply(self, record: dict[str, Any]) -> None:
        """Fold one journal record into the model."""
        kind = record["t"]
        if kind == "start":
            self.settle()
        elif kind == "begin":
            self.settle()
            self.pending = record
        elif kind == "end" and record["op"] in MUTATIONS:
            begin, self.pending = self.pending, None
            if begin is None or begin["id"] != record["id"]:
                raise ValueError(f"journal: an end without its begin: {record}")
            self._mutated(begin, record["outcome"])
        elif kind == "end" and record["op"] == "get" and record["outcome"] in ("ok", "missing"):
            self.observe(record["tenant"], record["key"], record.get("value"), "get")
        elif kind == "end" and record["op"] == "list" and record["outcome"] == "ok":
            for key in keys_of(self.worker):
                self.observe(record["tenant"], key, record["listing"].get(key), "list")

    def settle(self) -> None:
        """A begun mutation without an end (the process died inside it) may or may not have happened."""
        if self.pending is not None:
            begin, self.pending = self.pending, None
            self._mutated(begin, "unknown")

    def observe(self, tenant: str, key: str, seen: Value, how: str) -> None:
        """A read saw ``seen``: it must be one of the possible values, and is now the only one."""
        allowed = self.possible(tenant, key)
        if seen not in allowed:
            shown = sorted(str(value) for value in allowed)
            self.violations.append(f"{how} of {tenant}/{key} saw {seen}, expected one of {shown}")
        self.states[(tenant, key)] = frozenset({seen})

    def _mutated(self, begin: dict[str, Any], outcome: str) -> None:
        tenant, key, op = begin["tenant"], begin["key"], begin["op"]
        if outcome == "missing":  # copy raised NotFound: it changed nothing, and its source was absent
            self.observe(tenant, begin["src"], None, f"copy to {key}")
            return
        if outcome == "exists":  # put(if_absent=True) raised AlreadyExists: it changed nothing, the key was there
            self._present(tenant, key, f"put(if_absent) of {tenant}/{key} raised AlreadyExists")
            return
        after: frozenset[Value]
        if op == "put":
            after = frozenset({begin["value"]})
        elif op == "delete":
            after = ABSENT
        elif outcome == "ok":
            after = self._present(tenant, begin["src"], f"copy from {tenant}/{begin['src']} succeeded")
        else:
            after = self.possible(tenant, begin["src"]) - ABSENT
        self.states[(tenant, key)] = after if outcome == "ok" else self.possible(tenant, key) | after

    def _present(self, tenant: str, key: str, what: str) -> frozenset[Value]:
        """The possible values of a key a call proved present (a violation if it cannot be)."""
        present = self.possible(tenant, key) - ABSENT
        if not present:
            self.violations.append(f"{what}, but the key cannot exist")
            return self.possible(tenant, key)
        self.states[(tenant, key)] = present
        return present
