"""CLI: whole-process time of ``blobstore --help`` and of ``blobstore stat`` on the embedded default store.

Subject: ``python -m blobstore --help``, and ``python -m blobstore stat TENANT KEY``
of an existing key in a SQLite + local directory store (``BLOBSTORE_HOME``), each
a fresh process of this checkout. Baseline: ``python -c "import sqlite3"``, the
interpreter's own start-up, in the same rounds. The figure is the median
wall-clock time of the subject in seconds (the targets are absolute).
The checkout's bytecode is compiled first, as pip compiles an installed
package's: with PYTHONDONTWRITEBYTECODE set, every run would otherwise compile
blobstore's sources again.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.deployments import open_store
from benchmarks.harness import Context, Row, Target, phase

REPO = Path(__file__).resolve().parents[1]
TARGETS = {"help": Target("<=", 0.15, "s"), "stat": Target("<=", 0.35, "s")}


@dataclass(frozen=True)
class Sizes:
    rounds: int


QUICK = Sizes(rounds=5)
FULL = Sizes(rounds=10)


async def run(ctx: Context, sizes: Sizes | None = None) -> list[Row]:
    sizes = sizes or (QUICK if ctx.quick else FULL)
    home = ctx.workdir / "cli"
    async with open_store(home) as store:
        await store.tenant("bench").put("key", b"value")
    env = {**os.environ, "PYTHONPATH": str(REPO), "BLOBSTORE_HOME": str(home)}
    env = {name: value for name, value in env.items() if not name.startswith("BLOBSTORE_") or name == "BLOBSTORE_HOME"}
    commands = {
        "baseline": [sys.executable, "-c", "import sqlite3"],
        "help": [sys.executable, "-m", "blobstore", "--help"],
        "stat": [sys.executable, "-m", "blobstore", "stat", "bench", "key"],
    }
    seconds: dict[str, list[float]] = {name: [] for name in commands}
    with phase(ctx, f"CLI start-up, {sizes.rounds} rounds"):
        _compile_bytecode(REPO / "blobstore")
        for command in commands.values():  # warm the page cache
            _timed(command, env, home)
        for _ in range(sizes.rounds):
            for name, command in commands.items():
                seconds[name].append(_timed(command, env, home))
    baseline = statistics.median(seconds["baseline"])
    rows = []
    for name in ("help", "stat"):
        subject = statistics.median(seconds[name])
        what = "whole-process time of `blobstore " + ("--help`" if name == "help" else "stat` (embedded default)")
        notes = f"median of {sizes.rounds}; baseline: python -c 'import sqlite3' in the same rounds"
        samples = {"baseline_seconds": seconds["baseline"], "subject_seconds": seconds[name]}
        rows.append(
            Row(
                "CLI",
                name,
                what,
                subject,
                baseline,
                "s",
                subject / baseline,
                TARGETS[name],
                figure=subject,
                notes=notes,
                samples=samples,
            )
        )
    return rows


def _compile_bytecode(package: Path) -> None:
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=True)


def _timed(command: list[str], env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(command, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started
