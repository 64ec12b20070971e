"""Group commit: concurrent single puts into one uploader share one round of the upload protocol.

A put that finds its uploader idle runs at once, alone and in its caller's task (a single put's own path,
blobstore.db.hot_path); puts that arrive while a round runs wait for it to end, then go together as the
next round of at most :data:`MAX_ROUND` items (a key already in the forming round waits for the one after):
one transaction binds them or records their uploads, their objects are written and synced as one batch, one
transaction makes them live (blobstore.protocol.uploads.Uploader.put). Nothing waits on a timer: an idle
store adds no latency, and a busy one commits fewer, larger transactions.

Each put keeps its own outcome, decided as if the round's puts ran one after another in arrival order, and
is acknowledged only once its round's commit is done, exactly as alone. Only bytes held in memory join a
round: a shared round runs in a task of its own and may outlive its callers, so a caller cancelled while its
round runs leaves it to finish (its put may then be stored, unacknowledged, as a single put cancelled right
after its commit is); one cancelled before its round starts is left out of it.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import deque
from collections.abc import Hashable, Mapping
from typing import Protocol

from blobstore.core.ingest import Writable
from blobstore.db import binding
from blobstore.errors import BlobStoreError
from blobstore.model.results import BlobInfo

PutOutcome = BlobInfo | BlobStoreError
#: Most puts one round takes (a batch's size, blobstore.db.batches.MAX_BATCH, bounds its statements).
MAX_ROUND = 100


class RoundRunner(Hashable, Protocol):
    """What runs a round: equal runners (the same tenant of the same store) share their rounds."""

    async def put(
        self, pending: list[binding.Item], sources: Mapping[int, Writable], outcomes: list[PutOutcome | None]
    ) -> None:
        """Store the items, each one's outcome into ``outcomes[item.index]``; raises only what is a bug."""
        ...


@dataclasses.dataclass
class _Waiting:
    """One put waiting for its round: its item, its bytes, and the future its caller awaits."""

    item: binding.Item
    source: Writable
    outcome: asyncio.Future[PutOutcome]


@dataclasses.dataclass
class _Queue:
    """The puts of one runner waiting for the next round, and the task running their rounds (None while the put
    that found the runner idle runs alone)."""

    waiting: deque[_Waiting] = dataclasses.field(default_factory=deque)
    task: asyncio.Task[None] | None = None

    def take(self) -> list[_Waiting]:
        """The next round: waiting puts in arrival order, at most one per key, skipping callers that left."""
        taken: list[_Waiting] = []
        keys: set[str] = set()
        later: list[_Waiting] = []
        while self.waiting and len(taken) < MAX_ROUND:
            waiting = self.waiting.popleft()
            if waiting.outcome.done():  # its caller was cancelled before the round began
                continue
            if waiting.item.key in keys:
                later.append(waiting)
                continue
            keys.add(waiting.item.key)
            taken.append(waiting)
        self.waiting.extendleft(reversed(later))
        return taken


class GroupCommit:
    """The rounds of every runner of one store (blobstore.core.context.Core.group_commit)."""

    def __init__(self) -> None:
        self._queues: dict[RoundRunner, _Queue] = {}

    async def put(self, runner: RoundRunner, item: binding.Item, source: Writable) -> PutOutcome:
        """The outcome of storing ``item`` (its bytes in ``source``, held in memory) in the next round of
        ``runner``: its BlobInfo, or the BlobStoreError a put of it alone would have raised.

        An idle runner's put runs alone in its caller's task, as a put without group commit does (cancelling
        it cancels its round); puts arriving meanwhile wait, then run in rounds of a task of their own."""
        queue = self._queues.get(runner)
        if queue is None:
            queue = self._queues[runner] = _Queue()
            try:
                outcomes: list[PutOutcome | None] = [None]
                await runner.put([_numbered(item, 0)], {0: source}, outcomes)
                assert outcomes[0] is not None, "every item gets an outcome"
                return outcomes[0]
            finally:
                self._hand_over(runner, queue)
        waiting = _Waiting(item, source, asyncio.get_running_loop().create_future())
        queue.waiting.append(waiting)
        return await waiting.outcome

    def _hand_over(self, runner: RoundRunner, queue: _Queue) -> None:
        """After a round: the puts that arrived meanwhile go to a task running rounds, or the runner is idle."""
        if queue.waiting:
            queue.task = asyncio.create_task(self._run(runner, queue))
        else:
            del self._queues[runner]

    async def _run(self, runner: RoundRunner, queue: _Queue) -> None:
        """Run rounds until nobody waits; if this task is cancelled, so is every put still waiting."""
        try:
            while queue.waiting:
                await _round(runner, queue.take())
        finally:
            for waiting in queue.waiting:
                waiting.outcome.cancel()
            queue.waiting.clear()
            queue.task = None
            del self._queues[runner]


async def _round(runner: RoundRunner, round_: list[_Waiting]) -> None:
    """Store the round's puts together; each caller hears its own outcome (or the bug that ended the round)."""
    items = [_numbered(waiting.item, index) for index, waiting in enumerate(round_)]
    sources = {index: waiting.source for index, waiting in enumerate(round_)}
    outcomes: list[PutOutcome | None] = [None] * len(round_)
    try:
        await runner.put(items, sources, outcomes)
    except Exception as exc:  # a bug: every put of the round raises it, and the next round runs
        for waiting in round_:
            if not waiting.outcome.done():
                waiting.outcome.set_exception(exc)
        return
    except BaseException:  # cancelled: the store is closing
        for waiting in round_:
            waiting.outcome.cancel()
        raise
    for waiting, outcome in zip(round_, outcomes, strict=True):
        assert outcome is not None, "every item gets an outcome"
        if not waiting.outcome.done():
            waiting.outcome.set_result(outcome)


def _numbered(item: binding.Item, index: int) -> binding.Item:
    """``item`` as the ``index``-th of its round (its outcome's place)."""
    return item if item.index == index else dataclasses.replace(item, index=index)
