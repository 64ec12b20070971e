"""A worker process that races other workers with conditional writes on one deployment (``BLOBSTORE_*``).

    python tests/support/conditional_worker.py put --sync DIR --index 0
    python tests/support/conditional_worker.py delete --sync DIR --index 1

Keys ``cond/0`` .. ``cond/KEYS-1`` hold :func:`initial` bytes before the start. After the gate opens, each
worker writes every key in turn, with If-Match of its initial version: ``put`` stores bytes of its own
(:func:`written`), ``delete`` deletes the key. It prints one JSON line: the keys it won and those it lost
(PreconditionFailed); any other error fails the worker.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # run as a script: make the checkout importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from blobstore import BlobStore, PreconditionFailed
from blobstore.core.ingest import new_hasher
from tests.support.gate import wait_for_go

TENANT = "acme"
KEYS = 20


def initial(index: int) -> bytes:
    """What key ``cond/<index>`` holds before the race."""
    return f"initial version of key {index}".encode()


def written(worker: int, index: int) -> bytes:
    """What worker ``worker`` puts to key ``cond/<index>``: new bytes, so every put uploads between its checks."""
    return f"worker {worker} wrote key {index}".encode() * 64


def _digest(data: bytes) -> str:
    hasher = new_hasher()
    hasher.update(data)
    return str(hasher.hexdigest())


async def race(store: BlobStore, mode: str, worker: int) -> dict[str, Any]:
    tenant = store.tenant(TENANT)
    won, lost = [], []
    for index in range(KEYS):
        key, expected = f"cond/{index}", _digest(initial(index))
        try:
            if mode == "put":
                await tenant.put(key, written(worker, index), if_match=expected)
            else:
                assert await tenant.delete(key, if_match=expected)
        except PreconditionFailed:
            lost.append(index)
        else:
            won.append(index)
    return {"won": won, "lost": lost}


async def main(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=["put", "delete"])
    parser.add_argument("--sync", type=Path, required=True)
    parser.add_argument("--index", type=int, default=0)
    args = parser.parse_args(argv)
    async with await BlobStore.open() as store:
        await wait_for_go(args.sync, args.index)
        return await race(store, args.mode, args.index)


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1:]))))
