"""P6: the cost report over 1,000,000 references on PostgreSQL, against one plain aggregate query.

Setup (never timed): a scratch database, migrated, filled in SQL with
``INSERT ... SELECT ... FROM generate_series``: 100 tenants, 600,000 blobs of
1 byte to 1 MB, and 1,000,000 references spread so that blobs are shared
across tenants and copied within them (and some blobs are unreferenced,
pending GC), plus this month's egress rows. Refcounts and
tenant usage are computed in the same statements, so the store is consistent
(fsck-clean); indexes are rebuilt after the load, then VACUUM ANALYZE.
Storage is an empty local directory: the report never touches object storage.

Subject: ``await store.report()``, everything included (the per-tenant GROUP
BY with attribution windows, the blob totals, egress, Python assembly).
Baseline: ``SELECT tenant_id, count(*), sum(size) FROM refs GROUP BY tenant_id``
with bare asyncpg on the same tables.

Standalone (also what ``python -m benchmarks --only P6`` runs, in its own sizes)::

    python -m benchmarks.report_scale               # 1,000,000 references
    python -m benchmarks.report_scale --refs 100000 # quick

prints both times and their ratio and writes benchmarks/results/report_scale.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # run as a script: make the checkout importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.deployments import open_store, postgres_database, raw_postgres
from benchmarks.harness import Context, Row, Stopwatch, Target, interleave, latency_row, phase, unmeasured
from blobstore import BlobStore

TARGET = Target("<=", 3)
WHAT = "cost report over 1,000,000 refs"
BASELINE_SQL = "SELECT tenant_id, count(*), sum(size) FROM refs GROUP BY tenant_id"
RESULTS = Path(__file__).parent / "results" / "report_scale.json"


@dataclass(frozen=True)
class Sizes:
    refs: int
    tenants: int = 100
    rounds: int = 5

    @property
    def blobs(self) -> int:
        return max(1, self.refs * 3 // 5)


QUICK = Sizes(refs=100_000)
FULL = Sizes(refs=1_000_000)

#: Blob ``b`` has this many bytes (1 byte to 1 MB); a SQL expression over ``{b}``.
_SIZE = "(1 + ({b}::bigint * 7919) % 1000000)"

#: The references to load: ``r`` in [0, refs). The first 80% pick a tenant (``s mod tenants``) and a blob
#: (a multiplicative hash of ``s``) for ``s = r``: blobs shared across tenants, some of them by no one.
#: The last 20% repeat an earlier reference's tenant and blob (``s = (r - 0.8 refs) * 4``): copies within
#: a tenant. $1 = refs, $2 = tenants, $3 = blobs.
_PLAN_REFS = """
    CREATE TEMPORARY TABLE bench_refs AS
    SELECT r, 1 + s % $2::int AS tenant_id, 1 + ((s::bigint * 2654435761) % 4294967296) % $3::int AS blob_id
    FROM (SELECT r, CASE WHEN r < $1::int * 4 / 5 THEN r ELSE (r - $1::int * 4 / 5) * 4 END AS s
          FROM generate_series(0, $1::int - 1) AS r) AS planned
"""
_TENANTS = """
    INSERT INTO tenants (name, used_bytes, used_objects, created_at)
    SELECT 'tenant-' || lpad(t::text, 4, '0'), coalesce(u.b, 0), coalesce(u.n, 0), now()
    FROM generate_series(1, $1::int) AS t
    LEFT JOIN (SELECT tenant_id, count(*) AS n, sum({size}) AS b FROM bench_refs GROUP BY tenant_id) AS u
      ON u.tenant_id = t
""".format(size=_SIZE.format(b="blob_id"))
_BLOBS = """
    INSERT INTO blobs (scope, digest, size, object_key, state, refcount, created_at, unreferenced_since)
    SELECT '', md5(b::text) || md5((-b)::text), {size}, 'data/' || md5(b::text) || '.' || b, 'live',
           coalesce(c.n, 0), now() - interval '2 days', CASE WHEN c.n IS NULL THEN now() - interval '1 day' END
    FROM generate_series(1, $1::int) AS b
    LEFT JOIN (SELECT blob_id, count(*) AS n FROM bench_refs GROUP BY blob_id) AS c ON c.blob_id = b
""".format(size=_SIZE.format(b="b"))
_REFS = """
    INSERT INTO refs (tenant_id, key, blob_id, size, content_type, metadata, created_at)
    SELECT tenant_id, 'files/' || r, blob_id, {size}, 'application/octet-stream', '{{}}', now() FROM bench_refs
""".format(size=_SIZE.format(b="blob_id"))
_EGRESS = """
    INSERT INTO egress (tenant_id, day, bytes)
    SELECT t.id, d::date, 1000000 + (t.id * 7 + extract(day FROM d)::int) * 1000
    FROM tenants AS t, generate_series(date_trunc('month', now()), now(), interval '1 day') AS d
"""
#: Constraints and indexes of the bulk-loaded tables (and foreign keys of other tables onto them), dropped for
#: the load and rebuilt after it.
_SCHEMA = """
    SELECT 'constraint', c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid), c.contype::text
    FROM pg_constraint AS c
    WHERE (c.conrelid IN ('refs'::regclass, 'blobs'::regclass) AND c.contype IN ('p', 'u', 'f'))
       OR (c.confrelid IN ('refs'::regclass, 'blobs'::regclass) AND c.contype = 'f')
    UNION ALL
    SELECT 'index', i.indrelid::regclass::text, i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid), ''
    FROM pg_index AS i WHERE i.indrelid IN ('refs'::regclass, 'blobs'::regclass)
      AND NOT EXISTS (SELECT 1 FROM pg_constraint AS c WHERE c.conindid = i.indexrelid)
"""


async def load(url: str, sizes: Sizes, ctx: Context) -> None:
    """Fill a migrated, empty database with ``sizes`` in SQL; the schema ends as the migrations left it."""
    async with raw_postgres(url) as conn:
        schema = await conn.fetch(_SCHEMA)
        foreign = [row for row in schema if row[4] == "f"]
        with phase(ctx, f"load {sizes.refs:,} references"):
            for kind, table, name, _, _ in foreign + [row for row in schema if row[4] != "f"]:
                drop = f'ALTER TABLE {table} DROP CONSTRAINT "{name}"' if kind == "constraint" else f"DROP INDEX {name}"
                await conn.execute(drop)
            await conn.execute(_PLAN_REFS, sizes.refs, sizes.tenants, sizes.blobs)
            await conn.execute(_TENANTS, sizes.tenants)
            await conn.execute(_BLOBS, sizes.blobs)
            await conn.execute(_REFS)
            await conn.execute(_EGRESS)
            await conn.execute("DROP TABLE bench_refs")
        with phase(ctx, "rebuild constraints and indexes, VACUUM ANALYZE"):
            for kind, table, name, definition, _ in [row for row in schema if row[4] != "f"] + foreign:
                await conn.execute(
                    f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}' if kind == "constraint" else definition
                )
            await conn.execute("VACUUM ANALYZE")


async def measure(ctx: Context, sizes: Sizes) -> tuple[Row, dict[str, Any]]:
    """Load a scratch database, check the report adds up, then time report and baseline side by side."""
    with postgres_database(ctx) as url:
        async with open_store(
            ctx.workdir / "p6", database_url=url, storage_url=(ctx.workdir / "p6-blobs").as_uri()
        ) as store:
            await load(url, sizes, ctx)
            facts = await _check(store, sizes)
            async with raw_postgres(url) as raw:

                async def baseline() -> float:
                    with Stopwatch() as watch:
                        await raw.fetch(BASELINE_SQL)
                    return watch.seconds

                async def subject() -> float:
                    with Stopwatch() as watch:
                        await store.report()
                    return watch.seconds

                with phase(ctx, f"P6 report vs plain aggregate, {sizes.rounds} rounds"):
                    paired = await interleave(sizes.rounds, baseline, subject)
    row = latency_row(
        "P6",
        "postgres",
        WHAT if sizes.refs == FULL.refs else f"cost report over {sizes.refs:,} refs",
        paired,
        1,
        TARGET,
        f"baseline: {BASELINE_SQL} (bare asyncpg); {sizes.refs:,} refs, {sizes.blobs:,} blobs, {sizes.tenants} tenants",
    )
    return row, facts


async def _check(store: BlobStore, sizes: Sizes) -> dict[str, Any]:
    """The loaded store reports what was loaded, and attributed bytes add up to physical bytes."""
    report = await store.report()
    total = report.total
    assert total.objects == sizes.refs, total
    assert len(report.tenants) == sizes.tenants
    assert sum(row.attributed_bytes for row in report.tenants) == total.physical_bytes
    assert total.unique_bytes + total.shared_bytes == total.physical_bytes
    return {
        "refs": sizes.refs,
        "blobs": sizes.blobs,
        "tenants": sizes.tenants,
        "referenced_blobs": total.blobs,
        "pending_gc_blobs": total.pending_gc_blobs,
        "logical_bytes": total.logical_bytes,
        "physical_bytes": total.physical_bytes,
    }


async def run(ctx: Context, sizes: Sizes | None = None) -> list[Row]:
    """The harness entry point (``python -m benchmarks --only P6``)."""
    sizes = sizes or (QUICK if ctx.quick else FULL)
    if ctx.postgres_admin_url is None:
        return [unmeasured("P6", "postgres", WHAT, TARGET, "skip", "PostgreSQL disabled for this run")]
    row, _ = await measure(ctx, sizes)
    return [row]


def main(argv: list[str] | None = None) -> int:
    import os
    import shutil
    import tempfile

    from tests.support.servers import LOCAL_POSTGRES

    parser = argparse.ArgumentParser(prog="python -m benchmarks.report_scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--refs", type=int, default=FULL.refs, help="references to load (default 1,000,000)")
    parser.add_argument("--tenants", type=int, default=FULL.tenants)
    parser.add_argument("--rounds", type=int, default=FULL.rounds, help="timed rounds of each side")
    parser.add_argument("--json", type=Path, default=RESULTS, help=f"default {RESULTS}")
    args = parser.parse_args(argv)
    sizes = Sizes(refs=args.refs, tenants=args.tenants, rounds=args.rounds)
    admin = os.environ.get("BLOBSTORE_TEST_DATABASE_URL") or LOCAL_POSTGRES
    workdir = Path(tempfile.mkdtemp(prefix="blobstore-p6-"))
    started = time.monotonic()
    try:
        row, facts = asyncio.run(measure(Context(quick=False, workdir=workdir, postgres_admin_url=admin), sizes))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    subject = row.samples["subject_seconds"]
    baseline = row.samples["baseline_seconds"]
    print(
        f"{sizes.refs:,} references, {sizes.blobs:,} blobs, {sizes.tenants} tenants\n"
        f"store.report():   median {1000 * statistics.median(subject):8.1f} ms  "
        f"(min {1000 * min(subject):.1f}, max {1000 * max(subject):.1f})\n"
        f"plain aggregate:  median {1000 * statistics.median(baseline):8.1f} ms  "
        f"(min {1000 * min(baseline):.1f}, max {1000 * max(baseline):.1f})\n"
        f"ratio (median of per-round report/aggregate): {row.ratio:.2f}x  (target {TARGET})"
    )
    document = {
        "benchmark": "P6 report_scale",
        "command": "python -m benchmarks.report_scale " + " ".join(argv if argv is not None else sys.argv[1:]),
        "data": facts,
        "baseline_sql": BASELINE_SQL,
        "row": row.to_dict(),
        "seconds": round(time.monotonic() - started, 1),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(document, indent=2) + "\n")
    print(f"JSON in {args.json}", file=sys.stderr)
    return 0 if row.status == "pass" else 1


if __name__ == "__main__":
    sys.exit(main())
