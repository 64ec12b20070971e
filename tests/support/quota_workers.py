"""Worker processes that race puts against one tenant's quota; importable helpers and the worker itself.

Run by :func:`race` as ``python tests/support/quota_workers.py MODE --tenant T --count N --size S --sync DIR --index I``
with the ``BLOBSTORE_*`` environment of the test's store. Each worker waits for
the test's go, runs its writes four at a time, and prints one JSON line: how
many succeeded, and the message of every QuotaExceeded (any other error fails
the worker).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # run as a script: make the checkout importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from blobstore import BlobStore, NotFound, QuotaExceeded
from tests.support.gate import launch_gated, wait_for_go

#: Writes each worker keeps in flight at once.
CONCURRENCY = 4


async def race(
    env: dict[str, str], sync: Path, commands: list[list[str]], *, timeout: float = 120
) -> list[dict[str, Any]]:
    """Start one worker per command, release them together, return their JSON reports (fail on any error)."""
    return await launch_gated(__file__, env, sync, commands, timeout=timeout)


async def _bounded(jobs: list[Any]) -> list[Any]:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(job: Any) -> Any:
        async with gate:
            return await job

    return await asyncio.gather(*(one(job) for job in jobs))


async def _attempt(write: Any) -> str | None:
    """None if the write succeeded, the message if it hit the quota (anything else propagates)."""
    try:
        await write
    except QuotaExceeded as exc:
        return str(exc)
    return None


async def _puts(store: BlobStore, args: argparse.Namespace) -> dict[str, Any]:
    """``count`` puts of distinct bytes (``size`` each) under new keys."""
    tenant = store.tenant(args.tenant)
    writes = [
        _attempt(tenant.put(f"w{args.index}/{i}", f"{args.index}:{i}:".encode().ljust(args.size, b".")))
        for i in range(args.count)
    ]
    failures = [message for message in await _bounded(writes) if message is not None]
    return {"succeeded": args.count - len(failures), "quota_failures": failures}


async def _mix(store: BlobStore, args: argparse.Namespace) -> dict[str, Any]:
    """Puts of new keys, replacements with larger or smaller values, copies and deletes over a few keys."""
    tenant = store.tenant(args.tenant)
    keys = [f"m/{i}" for i in range(6)]

    async def one(i: int) -> str | None:
        key, other = keys[i % len(keys)], keys[(i * 5 + args.index) % len(keys)]
        kind = (i + args.index) % 4
        if kind == 3:
            await tenant.delete(key)
            return None
        if kind == 2:
            try:
                return await _attempt(tenant.copy(other, key))
            except NotFound:
                return None
        size = args.size * (1 + (i + args.index) % 3)
        return await _attempt(tenant.put(key, f"{args.index}:{i}:".encode().ljust(size, b"-")))

    failures = [message for message in await _bounded([one(i) for i in range(args.count)]) if message is not None]
    return {"succeeded": args.count - len(failures), "quota_failures": failures}


_MODES = {"puts": _puts, "mix": _mix}


async def _main(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=sorted(_MODES))
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--count", type=int, default=8)
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--sync", type=Path, required=True)
    parser.add_argument("--index", type=int, default=0)
    args = parser.parse_args(argv)
    async with await BlobStore.open() as store:  # the deployment named by BLOBSTORE_*
        await wait_for_go(args.sync, args.index)
        report = await _MODES[args.mode](store, args)
    report["pid"] = os.getpid()
    return report


if __name__ == "__main__":
    print(json.dumps(asyncio.run(_main(sys.argv[1:]))))
