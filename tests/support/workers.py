"""Helpers for store-level tests: invariant checks over the database and storage, and worker processes.

Importable (``from workers import check_invariants``) and runnable as a worker
process that opens the store named by the ``BLOBSTORE_*`` environment and
races other workers::

    python tests/support/workers.py put-same --tenant t --prefix k/ --count 10 --data abc --sync DIR --index 0

Every worker waits until the test has started all of them (``--sync``), prints
one JSON line with what it did, and exits non-zero if any call raised.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import text

if __name__ == "__main__":  # run as a script: make the checkout importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from blobstore import BlobStore, NotFound
from blobstore.storage.layout import OBJECT_PREFIX, is_object_key
from tests.support.gate import launch_gated, wait_for_go

# --- inspecting a store ----------------------------------------------------------------------------


async def rows(store: BlobStore, sql: str, **params: Any) -> list[Any]:
    """Run a read-only SQL query on the store's database and return all rows."""
    async with store.database.engine.connect() as conn:
        return list(await conn.execute(text(sql), params))


async def scalar(store: BlobStore, sql: str, **params: Any) -> Any:
    """Run a SQL query that returns one value."""
    found = await rows(store, sql, **params)
    return found[0][0] if found else None


async def data_objects(store: BlobStore) -> list[str]:
    """Keys of every blob object of the store's own in storage (foreign files beside them left out)."""
    return sorted([info.key async for info in store.storage.list(OBJECT_PREFIX) if is_object_key(info.key)])


async def refcount_of(store: BlobStore, digest: str) -> int:
    """Sum of the recorded reference counts of all blob rows with ``digest``."""
    return int(await scalar(store, "SELECT COALESCE(SUM(refcount), 0) FROM blobs WHERE digest = :d", d=digest))


async def blob_rows(store: BlobStore, digest: str) -> list[Any]:
    """(id, scope, state, refcount, object_key) of every blob row with ``digest``."""
    return await rows(
        store, "SELECT id, scope, state, refcount, object_key FROM blobs WHERE digest = :d ORDER BY id", d=digest
    )


async def object_key_of(store: BlobStore, tenant: str, key: str) -> str:
    """The storage key of the object a tenant's key points at."""
    found = await scalar(
        store,
        "SELECT b.object_key FROM refs r JOIN blobs b ON b.id = r.blob_id JOIN tenants t ON t.id = r.tenant_id "
        "WHERE t.name = :t AND r.key = :k",
        t=tenant,
        k=key,
    )
    assert found is not None, f"no ref {tenant}/{key}"
    return str(found)


async def invariant_violations(store: BlobStore, *, quiescent: bool = True) -> list[str]:
    """Every broken bookkeeping invariant, as readable lines (empty: all hold).

    Always: each ref points at a live blob of its size; each blob's refcount equals
    its refs and multipart part rows; each tenant's usage equals the sums over its refs (bytes: and its staged
    parts); each live blob's
    object exists. ``quiescent`` (nothing in flight): no uploading/deleting rows
    remain and storage holds exactly the live blobs' objects.
    """
    problems: list[str] = []
    bad_refs = await rows(
        store,
        "SELECT r.key, b.state, r.size, b.size FROM refs r JOIN blobs b ON b.id = r.blob_id "
        "WHERE b.state <> 'live' OR r.size <> b.size",
    )
    problems += [f"ref {key!r} points at a {state} blob (sizes {a}/{b})" for key, state, a, b in bad_refs]
    counts = await rows(
        store,
        "SELECT b.id, b.digest, b.refcount, (SELECT COUNT(*) FROM refs r WHERE r.blob_id = b.id) "
        "+ (SELECT COUNT(*) FROM multipart_parts p WHERE p.blob_id = b.id) FROM blobs b",
    )
    problems += [f"blob {i} ({d[:8]}) has refcount {rc} but {n} refs" for i, d, rc, n in counts if rc != n]
    usage = await rows(
        store,
        "SELECT t.name, t.used_bytes, t.used_objects, "
        "(SELECT COALESCE(SUM(r.size), 0) FROM refs r WHERE r.tenant_id = t.id) "
        "+ (SELECT COALESCE(SUM(p.size), 0) FROM multipart_parts p JOIN multipart_uploads u ON u.id = p.upload_id "
        "WHERE u.tenant_id = t.id), "
        "(SELECT COUNT(*) FROM refs r WHERE r.tenant_id = t.id) FROM tenants t",
    )
    problems += [
        f"tenant {name} records {ub} bytes/{uo} objects but refs sum to {rb}/{ro}"
        for name, ub, uo, rb, ro in usage
        if (ub, uo) != (rb, ro)
    ]
    duplicates = await rows(
        store, "SELECT scope, digest FROM blobs WHERE state = 'live' GROUP BY scope, digest HAVING COUNT(*) > 1"
    )
    problems += [f"several live blobs for {scope!r}/{digest[:8]}" for scope, digest in duplicates]
    live = {key for (key,) in await rows(store, "SELECT object_key FROM blobs WHERE state = 'live'")}
    stored = set(await data_objects(store))
    problems += [f"live blob object {key} is missing from storage" for key in sorted(live - stored)]
    if quiescent:
        pending = await rows(store, "SELECT id, state FROM blobs WHERE state <> 'live'")
        problems += [f"blob {i} left in state {state}" for i, state in pending]
        problems += [f"object {key} in storage has no live blob" for key in sorted(stored - live)]
    return problems


async def check_invariants(store: BlobStore, *, quiescent: bool = True) -> None:
    """Fail with every broken invariant listed (see :func:`invariant_violations`)."""
    problems = await invariant_violations(store, quiescent=quiescent)
    assert not problems, "\n".join(problems)


def worker_env(store: BlobStore) -> dict[str, str]:
    """The environment that makes a worker process open the same deployment as ``store``."""
    settings = store.settings
    env = dict(os.environ)
    env.update(
        BLOBSTORE_HOME=str(settings.home),
        BLOBSTORE_DATABASE_URL=settings.database_url,
        BLOBSTORE_STORAGE_URL=settings.storage_url,
        BLOBSTORE_DEDUP_SCOPE=settings.dedup_scope,
        BLOBSTORE_GC_GRACE=str(settings.gc_grace_seconds),
        PYTHONPATH=os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[2]), env.get("PYTHONPATH")])),
    )
    env.pop("BLOBSTORE_S3_ENDPOINT_URL", None)
    if settings.s3_endpoint_url:
        env["BLOBSTORE_S3_ENDPOINT_URL"] = settings.s3_endpoint_url
    return env


async def run_workers(
    store: BlobStore, sync_dir: Path, commands: list[list[str]], *, timeout: float = 120
) -> list[dict[str, Any]]:
    """Start one worker process per command on ``store``'s deployment, release them together, and
    return each one's JSON report; fail with its stderr if any worker fails."""
    return await launch_gated(__file__, worker_env(store), sync_dir, commands, timeout=timeout)


# --- the worker process ----------------------------------------------------------------------------


async def _put_same(store: BlobStore, args: argparse.Namespace) -> dict[str, Any]:
    """``count`` concurrent puts of the same bytes to distinct keys."""
    tenant = store.tenant(args.tenant)
    data = args.data.encode()
    infos = await asyncio.gather(*(tenant.put(f"{args.prefix}{i}", data) for i in range(args.count)))
    for i in range(args.count):
        assert await tenant.get(f"{args.prefix}{i}") == data
    return {"puts": len(infos), "digests": sorted({info.digest for info in infos})}


async def _put_key(store: BlobStore, args: argparse.Namespace) -> dict[str, Any]:
    """``count`` concurrent puts of distinct bytes to one key."""
    tenant = store.tenant(args.tenant)
    values = [f"{args.data}-{args.index}-{i}".encode() for i in range(args.count)]
    await asyncio.gather(*(tenant.put(args.prefix, value) for value in values))
    return {"puts": len(values)}


async def _churn(store: BlobStore, args: argparse.Namespace) -> dict[str, Any]:
    """For ``seconds``: put the same bytes on one key that other workers keep deleting, and read it back."""
    rng = random.Random(args.index)
    tenant = store.tenant(args.tenant)
    data = args.data.encode()
    read_back = missing = 0
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        await tenant.put(args.prefix, data)
        try:
            got = await tenant.get(args.prefix)
        except NotFound:
            missing += 1
        else:
            assert got == data, "read back other bytes than were put"
            read_back += 1
        if rng.random() < 0.5:  # now and then leave the bytes unreferenced long enough for GC to take them
            await asyncio.sleep(rng.random() * 2 * store.settings.gc_grace_seconds)
    return {"read_back": read_back, "missing": missing}


async def _delete(store: BlobStore, args: argparse.Namespace) -> dict[str, Any]:
    """For ``seconds``: delete one key, again and again."""
    rng = random.Random(args.index)
    tenant = store.tenant(args.tenant)
    deleted = attempts = 0
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        deleted += await tenant.delete(args.prefix)
        attempts += 1
        await asyncio.sleep(rng.random() * 0.005)
    return {"deleted": deleted, "attempts": attempts}


async def _gc(store: BlobStore, args: argparse.Namespace) -> dict[str, Any]:
    """For ``seconds``: collect garbage, again and again."""
    reclaimed = runs = 0
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        reclaimed += (await store.gc()).blobs_reclaimed
        runs += 1
    return {"reclaimed": reclaimed, "runs": runs}


async def _mix(store: BlobStore, args: argparse.Namespace) -> dict[str, Any]:
    """Random puts (replacing), copies and deletes over a few keys and a few distinct values."""
    rng = random.Random(args.index)
    tenant = store.tenant(args.tenant)
    keys = [f"{args.prefix}{i}" for i in range(4)]
    values = [f"{args.data}-{i}".encode() for i in range(3)]
    done: dict[str, int] = {"put": 0, "copy": 0, "delete": 0, "copy-missing": 0}

    async def one() -> None:
        op = rng.choice(["put", "put", "copy", "delete"])
        if op == "put":
            await tenant.put(rng.choice(keys), rng.choice(values))
        elif op == "copy":
            try:
                await tenant.copy(rng.choice(keys), rng.choice(keys))
            except NotFound:
                op = "copy-missing"
        else:
            await tenant.delete(rng.choice(keys))
        done[op] += 1

    for _ in range(args.count):
        await asyncio.gather(*(one() for _ in range(4)))
    return done


_MODES = {"put-same": _put_same, "put-key": _put_key, "churn": _churn, "delete": _delete, "mix": _mix, "gc": _gc}


async def _main(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=sorted(_MODES))
    parser.add_argument("--tenant", default="acme")
    parser.add_argument("--prefix", default="k")
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--data", default="same bytes")
    parser.add_argument("--sync", type=Path, required=True)
    parser.add_argument("--index", type=int, default=0)
    args = parser.parse_args(argv)
    async with await BlobStore.open() as store:  # the deployment named by BLOBSTORE_*
        await wait_for_go(args.sync, args.index)
        started = time.monotonic()
        report = await _MODES[args.mode](store, args)
        report["seconds"] = round(time.monotonic() - started, 3)
    report["pid"] = os.getpid()
    return report


if __name__ == "__main__":
    print(json.dumps(asyncio.run(_main(sys.argv[1:]))))


async def make_raw(store: BlobStore, tenant: str, key: str, data: bytes) -> None:
    """Turn the blob under ``key`` into one as stored before frames: its object the raw bytes, no index."""
    object_key = await object_key_of(store, tenant, key)
    await store.storage.write(object_key, data)
    async with store.database.engine.begin() as conn:
        await conn.execute(
            text("UPDATE blobs SET frames = NULL, stored_size = NULL WHERE object_key = :k"), {"k": object_key}
        )
