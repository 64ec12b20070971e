"""Group commit's rounds (blobstore.core.group_commit), with a runner that records them."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from blobstore import BlobInfo, NotFound
from blobstore.core.group_commit import MAX_ROUND, GroupCommit, PutOutcome
from blobstore.core.ingest import Writable
from blobstore.db import binding
from blobstore.model.preconditions import UNCONDITIONAL


def item(key: str) -> binding.Item:
    return binding.Item(-1, key, "0" * 64, 1, None, {}, UNCONDITIONAL)


@dataclass(eq=False)
class Runner:
    """Runs each round when let go (``gate``), recording its keys; a key in ``failing`` gets NotFound."""

    gate: asyncio.Event = field(default_factory=asyncio.Event)
    rounds: list[list[str]] = field(default_factory=list)
    tasks: list[asyncio.Task[object] | None] = field(default_factory=list)
    failing: set[str] = field(default_factory=set)
    bug: Exception | None = None

    async def put(
        self, pending: list[binding.Item], sources: Mapping[int, Writable], outcomes: list[PutOutcome | None]
    ) -> None:
        assert [each.index for each in pending] == list(range(len(pending)))
        assert set(sources) == set(range(len(pending)))
        self.rounds.append([each.key for each in pending])
        self.tasks.append(asyncio.current_task())
        await self.gate.wait()
        if self.bug is not None:
            raise self.bug
        for each in pending:
            failed = each.key in self.failing
            bound = each.bound("t", datetime.now(UTC), deduplicated=False, replaced=False)
            outcomes[each.index] = NotFound(each.key) if failed else bound


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_put_alone_runs_at_once_and_puts_arriving_meanwhile_share_the_next_round() -> None:
    commits, runner = GroupCommit(), Runner()
    first = asyncio.create_task(commits.put(runner, item("a"), b"a"))
    await settle()
    later = [asyncio.create_task(commits.put(runner, item(key), key.encode())) for key in "bcd"]
    await settle()

    assert runner.rounds == [["a"]]  # b, c and d wait for a's round
    runner.gate.set()
    results = await asyncio.gather(first, *later)

    assert runner.rounds == [["a"], ["b", "c", "d"]]
    assert runner.tasks[0] is first  # the idle runner's put ran in its caller's task, with no hop
    assert [info.key for info in results if isinstance(info, BlobInfo)] == ["a", "b", "c", "d"]


async def test_each_put_hears_its_own_outcome() -> None:
    commits, runner = GroupCommit(), Runner(failing={"b"})
    runner.gate.set()

    outcomes = await asyncio.gather(*(commits.put(runner, item(key), b"x") for key in "abc"))

    assert [type(outcome) for outcome in outcomes] == [BlobInfo, NotFound, BlobInfo]


async def test_a_key_appears_once_per_round_and_rounds_are_bounded() -> None:
    commits, runner = GroupCommit(), Runner()
    first = asyncio.create_task(commits.put(runner, item("busy"), b""))
    await settle()
    keys = ["k", "k", "j", *(f"n{i}" for i in range(MAX_ROUND))]
    waiting = [asyncio.create_task(commits.put(runner, item(key), b"")) for key in keys]
    await settle()
    runner.gate.set()
    await asyncio.gather(first, *waiting)

    assert runner.rounds[1][:2] == ["k", "j"]
    assert len(runner.rounds[1]) == MAX_ROUND
    assert runner.rounds[2][0] == "k"  # the repeat waited for the round after
    assert sorted(key for round_ in runner.rounds for key in round_) == sorted(["busy", *keys])


async def test_a_caller_cancelled_before_its_round_is_left_out_of_it() -> None:
    commits, runner = GroupCommit(), Runner()
    first = asyncio.create_task(commits.put(runner, item("a"), b""))
    await settle()
    leaving = asyncio.create_task(commits.put(runner, item("gone"), b""))
    staying = asyncio.create_task(commits.put(runner, item("b"), b""))
    await settle()
    leaving.cancel()
    runner.gate.set()
    await asyncio.gather(first, staying)

    assert runner.rounds == [["a"], ["b"]]
    assert leaving.cancelled()


async def test_a_bug_in_a_round_reaches_each_of_its_callers_and_the_next_round_still_runs() -> None:
    commits, runner = GroupCommit(), Runner(bug=RuntimeError("a bug"))
    first = asyncio.create_task(commits.put(runner, item("a"), b""))
    await settle()
    second = asyncio.create_task(commits.put(runner, item("b"), b""))
    await settle()
    runner.gate.set()

    with pytest.raises(RuntimeError, match="a bug"):
        await first
    with pytest.raises(RuntimeError, match="a bug"):
        await second
    runner.bug = None
    assert isinstance(await commits.put(runner, item("c"), b""), BlobInfo)
    assert runner.rounds[-1] == ["c"]


async def test_equal_runners_share_rounds_and_others_run_their_own() -> None:
    commits = GroupCommit()
    mine, theirs = Runner(), Runner()
    first = asyncio.create_task(commits.put(mine, item("a"), b""))
    other = asyncio.create_task(commits.put(theirs, item("z"), b""))
    await settle()

    assert mine.rounds == [["a"]]
    assert theirs.rounds == [["z"]]
    mine.gate.set()
    theirs.gate.set()
    await asyncio.gather(first, other)


async def test_cancelling_the_put_that_found_the_runner_idle_cancels_its_round_and_the_others_still_run() -> None:
    commits, runner = GroupCommit(), Runner()
    first = asyncio.create_task(commits.put(runner, item("a"), b""))
    await settle()
    second = asyncio.create_task(commits.put(runner, item("b"), b""))
    await settle()
    first.cancel()
    await settle()
    runner.gate.set()

    assert isinstance(await second, BlobInfo)
    assert first.cancelled()
    assert runner.rounds == [["a"], ["b"]]
