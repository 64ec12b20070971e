"""P4: peak resident memory of a streamed 1 GiB put (async iterator, and file path) and get.

Each transfer runs in a fresh child process (:mod:`benchmarks.memory_probe`),
because the kernel's high-water mark (VmHWM) cannot be reset. Baseline: the
child's VmRSS after a warm-up, just before the transfer. Figure: MiB of peak
above that. Store: SQLite + local directory. The figure counts every resident
page, file-backed ones included (the notes give the anonymous peak apart).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.deployments import open_store
from benchmarks.harness import Context, Row, Target, phase

MiB = 1024 * 1024
TARGET = Target("<=", 64, "MiB")
OPS = {
    "put-stream": "put of an async iterator",
    "put-path": "put of a file path",
    "get": "streamed get (Tenant.open)",
}


@dataclass(frozen=True)
class Sizes:
    size: int


QUICK = Sizes(256 * MiB)
FULL = Sizes(1024 * MiB)


async def run(ctx: Context, sizes: Sizes | None = None) -> list[Row]:
    sizes = sizes or (QUICK if ctx.quick else FULL)
    home = ctx.workdir / "p4"
    async with open_store(home):
        pass  # migrated and paired before any child opens it
    await asyncio.to_thread(_write_file, home / "input.bin", sizes.size)
    rows = []
    for op, what in OPS.items():
        with phase(ctx, f"P4 {op} {sizes.size // MiB} MiB"):
            result = await asyncio.to_thread(probe_in_child, op, home, sizes.size)
        rows.append(_row(op, what, sizes.size, result))
    (home / "input.bin").unlink()
    return rows


def probe_in_child(op: str, home: Path, size: int) -> dict[str, Any]:
    """Run ``benchmarks.memory_probe OP HOME SIZE`` in a fresh process; its JSON result."""
    paths = [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, paths)))
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.memory_probe", op, str(home), str(size)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        timeout=1800,
    )
    return dict(json.loads(completed.stdout.strip().splitlines()[-1]))


def _row(op: str, what: str, size: int, result: dict[str, Any]) -> Row:
    return peak_rss_row(
        "P4", f"peak RSS, {size // MiB} MiB {what}", result, f"{size / MiB / result['seconds']:.0f} MiB/s"
    )


def peak_rss_row(bench_id: str, what: str, result: dict[str, Any], speed: str) -> Row:
    """A row judging the peak RSS of one probe above the process before it (target: at most 64 MiB)."""
    before = result["before_rss_kib"] / 1024
    peak = max(result["hwm_kib"], result["sampled_peak_rss_kib"]) / 1024
    anon = (result["sampled_peak_anon_kib"] - result["before_anon_kib"]) / 1024
    notes = (
        f"{result['op']}: VmRSS before {before:.0f} MiB, VmHWM after {result['hwm_kib'] / 1024:.0f} MiB "
        f"(before the run {result['before_hwm_kib'] / 1024:.0f}); anonymous memory peaked "
        f"{anon:.0f} MiB above before (5 ms sampling); {speed}"
    )
    return Row(
        bench_id,
        "local+sqlite",
        what,
        peak,
        before,
        "MiB",
        peak / before,
        TARGET,
        figure=peak - before,
        notes=notes,
        samples={key: [value] for key, value in result.items() if isinstance(value, int | float)},
    )


def _write_file(path: Path, size: int) -> None:
    """``size`` bytes: a unique random first MiB, then one random 16 MiB block repeated."""
    block = os.urandom(16 * MiB)
    with path.open("wb") as out:
        out.write(os.urandom(min(MiB, size)))
        written = min(MiB, size)
        while written < size:
            piece = block[: size - written]
            out.write(piece)
            written += len(piece)
