"""The soak's processes and its chaos: workers started and restarted, SIGKILLs, dropped database connections.

Each member of the fleet runs ``python -m benchmarks.soak_worker`` until the
soak's end time. A supervisor restarts a member whenever its process ends
before then: after a SIGKILL from :func:`kill_workers` (counted as a kill) or
on its own (counted as a crash, with the tail of its log). Meanwhile
:func:`drop_connections` terminates random server backends of the soak's
database, as a proxy or a failover would.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from benchmarks.deployments import plain_postgres_url

ROOT = Path(__file__).resolve().parents[1]
#: How long the processes may take to finish their last call after the end time.
STOP_TIMEOUT = 120.0
_BACKENDS = (
    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
    "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
)


def log(started: float, message: str) -> None:
    print(f"[{time.time() - started:6.0f} s] {message}", file=sys.stderr, flush=True)


@dataclass
class Member:
    """One soak process (``ops`` worker ``index``, or the ``gc`` or ``fsck`` loop) and what happened to it."""

    role: str
    index: int
    workdir: Path
    process: asyncio.subprocess.Process | None = None
    kills: int = 0
    crashes: list[str] = field(default_factory=list)
    killing: bool = False

    @property
    def name(self) -> str:
        return f"{self.role}-{self.index}"

    @property
    def journal(self) -> Path:
        return self.workdir / f"{self.name}.jsonl"

    @property
    def log(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def log_tail(self, lines: int = 15) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def members(workdir: Path, workers: int) -> list[Member]:
    """``workers`` operations workers, one GC loop and one fsck loop, journaling into ``workdir``."""
    return [Member("ops", i, workdir) for i in range(workers)] + [Member("gc", 0, workdir), Member("fsck", 0, workdir)]


@dataclass
class Fleet:
    """Every soak process, each kept running until ``until`` (a Unix time)."""

    members: list[Member]
    env: Mapping[str, str]
    until: float
    #: Arguments every worker gets besides its role, index, journal and end time.
    worker_args: list[str]
    started: float = field(default_factory=time.time)
    hung: list[str] = field(default_factory=list)

    async def run(self) -> None:
        """Run every member until the end time, then wait for all to finish. A process still running
        ``STOP_TIMEOUT`` after the end is reported as hung; it, and any process left when this is
        cancelled, is killed."""
        supervisors = [asyncio.ensure_future(self._supervise(member)) for member in self.members]
        try:
            done, _ = await asyncio.wait(supervisors, timeout=self.until - time.time() + STOP_TIMEOUT)
            for task in done:
                task.result()
            self.hung += [
                f"{m.name} still ran {STOP_TIMEOUT:.0f} s after the end:\n{m.log_tail()}" for m in self._running()
            ]
        finally:
            for member in self._running():
                assert member.process is not None
                member.process.kill()
            for task in supervisors:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def _running(self) -> list[Member]:
        return [m for m in self.members if m.process and m.process.returncode is None]

    def kill(self, member: Member) -> bool:
        """SIGKILL the member's process (its supervisor restarts it); False if it is not running."""
        if member.process is None or member.process.returncode is not None or member.killing:
            return False
        member.killing = True
        member.process.kill()
        return True

    async def _supervise(self, member: Member) -> None:
        while time.time() < self.until:
            with member.log.open("ab") as output:
                member.process = await asyncio.create_subprocess_exec(
                    *self._command(member), env=dict(self.env), cwd=ROOT, stdout=output, stderr=output
                )
            code = await member.process.wait()
            if member.killing:
                member.killing = False
                member.kills += 1
                log(self.started, f"SIGKILLed {member.name} (pid {member.process.pid}); restarting it")
            elif code != 0:
                member.crashes.append(f"{member.name} exited with {code}:\n{member.log_tail()}")
                log(self.started, f"{member.name} CRASHED with exit code {code}; restarting it")

    def _command(self, member: Member) -> list[str]:
        return [
            *(sys.executable, "-m", "benchmarks.soak_worker", member.role, "--index", str(member.index)),
            *("--journal", str(member.journal), "--until", repr(self.until), *self.worker_args),
        ]


async def kill_workers(fleet: Fleet, interval: float, rng: random.Random) -> None:
    """SIGKILL a random member every ``interval`` seconds until shortly before the end."""
    when = fleet.started + interval
    while when < fleet.until - 1:
        await asyncio.sleep(max(0.0, when - time.time()))
        fleet.kill(rng.choice(fleet.members))
        when += interval


async def drop_connections(database_url: str, until: float, rng: random.Random) -> int:
    """Every 0.5-3 s until ``until``, terminate one or two random client backends of the database
    (any soak process's); returns how many were terminated."""
    conn = await asyncpg.connect(plain_postgres_url(database_url))
    dropped = 0
    try:
        while (pause := rng.uniform(0.5, 3.0)) < until - time.time():
            await asyncio.sleep(pause)
            pids = [row["pid"] for row in await conn.fetch(_BACKENDS)]
            for pid in rng.sample(pids, min(len(pids), rng.randint(1, 2))):
                dropped += bool(await conn.fetchval("SELECT pg_terminate_backend($1)", pid))
    finally:
        await conn.close()
    return dropped
