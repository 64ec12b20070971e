"""A start gate for multi-process tests: worker processes wait until every one of them is ready.

The test side calls :func:`launch_gated`; each worker script calls :func:`wait_for_go`
once its store is open, so all workers start their operations at the same moment.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

READY_TIMEOUT = 120.0


async def launch_gated(
    script: Path | str, env: Mapping[str, str], sync: Path, commands: Sequence[Sequence[str]], *, timeout: float
) -> list[dict[str, Any]]:
    """Run ``python SCRIPT COMMAND --sync SYNC --index I`` per command, release them together once all
    are ready, and return the JSON object each prints last; fail with its stderr if any worker fails."""
    sync.mkdir(parents=True, exist_ok=True)
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            str(script),
            *command,
            "--sync",
            str(sync),
            "--index",
            str(index),
            env=dict(env),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for index, command in enumerate(commands)
    ]
    outputs = [asyncio.ensure_future(proc.communicate()) for proc in procs]
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while len(list(sync.glob("ready.*"))) < len(procs):
            assert time.monotonic() < deadline, "workers did not get ready in time"
            exited = [output.result()[1].decode() for output in outputs if output.done()]
            assert not exited, f"a worker exited before the start:\n{exited[0]}"
            await asyncio.sleep(0.02)
        (sync / "go").touch()
        results = await asyncio.wait_for(asyncio.gather(*outputs), timeout)
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    reports = []
    for proc, (out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, f"worker failed ({proc.returncode}):\n{err.decode()}"
        reports.append(json.loads(out.decode().strip().splitlines()[-1]))
    return reports


async def wait_for_go(sync: Path, index: int) -> None:
    """Worker side: say this worker is ready, then wait for the test's go."""
    (sync / f"ready.{index}").touch()
    deadline = time.monotonic() + READY_TIMEOUT
    while not (sync / "go").exists():
        if time.monotonic() > deadline:
            raise TimeoutError("the test never said go")
        await asyncio.sleep(0.005)
