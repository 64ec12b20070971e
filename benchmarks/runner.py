"""Which module measures which benchmark, and running a selection of them, each on a fresh event loop.

A benchmark that fails becomes an ``error`` row and the others still run.
P6 lives in ``benchmarks/report_scale.py`` (the cost-report issue); until that
module exists its row says it waits for it.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import traceback
from collections.abc import Iterable
from typing import Any

from benchmarks.harness import Context, Row, Target, unmeasured

#: id -> (module, what it measures, its target) in table order.
BENCHMARKS: dict[str, tuple[str, str, Target]] = {
    "P1": ("benchmarks.dedup_puts", "puts/s, 4 KiB dedup hits", Target(">=", 0.5)),
    "P2": ("benchmarks.unique_puts", "unique put throughput", Target(">=", 0.7)),
    "P3": ("benchmarks.large_dedup", "put of a 256 MiB file already stored", Target(">=", 0.5)),
    "P4": ("benchmarks.memory", "peak RSS of a streamed 1 GiB transfer", Target("<=", 64, "MiB")),
    "P5": ("benchmarks.listing", "a page of 1000 deep in 1,000,000 keys", Target("<=", 1.5)),
    "P6": ("benchmarks.report_scale", "cost report over 1,000,000 refs", Target("<=", 3)),
    "P7": ("benchmarks.contention", "32 concurrent puts of identical bytes", Target(">=", 0.5)),
    "P8": ("benchmarks.gc_reclaim", "GC reclaiming 100,000 blobs", Target(">=", 0.5)),
    "P9": ("benchmarks.stat_reads", "stat of an existing key vs a bare SELECT", Target(">=", 0.5)),
    "P10": ("benchmarks.get_reads", "get of 4 KiB vs a bare SELECT + file read", Target(">=", 0.5)),
    "P11": ("benchmarks.tenant_contention", "8 processes into one tenant vs 8 tenants", Target(">=", 0.7)),
    "P12": ("benchmarks.batch_puts", "1,000 dedup-hit puts: one batch vs single puts", Target(">=", 10)),
    "P13": ("benchmarks.maintenance_memory", "peak RSS of gc / fsck over 1,000,000 objects", Target("<=", 64, "MiB")),
    "C1": ("benchmarks.compression_ratio", "stored ÷ logical bytes vs zstd -3 per file", Target("<=", 1.05)),
    "C2": ("benchmarks.compressed_puts", "put of 64 MiB vs zstd-3 alone / vs compression off", Target(">=", 0.7)),
    "C3": ("benchmarks.compressed_gets", "get of 64 MiB compressible vs zstd decompression", Target(">=", 0.7)),
    "C4": ("benchmarks.compressed_ranges", "4 KiB ranged read of a 256 MiB blob: zstd vs raw", Target("<=", 2)),
    "C5": ("benchmarks.backup_tools", "import vs restic / borg: stored bytes, time", Target("<=", 1.3)),
    "PEER": ("benchmarks.peer", "256 KiB puts vs svc-infra LocalBackend.put", Target(">=", 2)),
    "PEER-HTTP": ("benchmarks.peer_http", "4 KiB GET / PUT over HTTP vs svc-infra's storage routes", Target(">=", 1)),
    "CLI": ("benchmarks.cli_startup", "whole-process time of blobstore --help / stat", Target("<=", 0.15, "s")),
    "I1": ("benchmarks.import_files", "import of 10,000 files of 64 KiB vs cp -r", Target(">=", 0.3)),
    "I2": ("benchmarks.dry_run", "import --dry-run of a 1 GiB tree vs BLAKE3", Target(">=", 0.7)),
    "H1": ("benchmarks.http_get", "4 KiB GETs over HTTP, 16 clients, vs bare uvicorn", Target(">=", 0.5)),
    "H2": ("benchmarks.http_put", "PUT of 64 MiB over HTTP vs in-process put", Target(">=", 0.7)),
    "H3": ("benchmarks.http_memory", "server peak RSS, 1 GiB PUT and GET", Target("<=", 64, "MiB")),
    "H4": ("benchmarks.http_load", "mixed load, 64 clients, 2 servers, GC running", Target("<=", 0, "failures")),
    "S1": ("benchmarks.s3_reads", "boto3 GETs of 4 KiB: S3 API vs native HTTP API", Target(">=", 0.8)),
    "S2": ("benchmarks.s3_upload", "boto3 upload_file (multipart) vs native HTTP PUT", Target(">=", 0.7)),
    "S3": ("benchmarks.s3_peer", "boto3 4 KiB and 64 MiB PUT/GET vs moto's S3 server", Target(">=", 1)),
}


def parse_only(text: str | None) -> list[str]:
    """``"P1,p3"`` -> ``["P1", "P3"]``; None -> every benchmark. ValueError for an unknown id."""
    if not text:
        return list(BENCHMARKS)
    wanted = [part.strip().upper() for part in text.split(",") if part.strip()]
    unknown = [name for name in wanted if name not in BENCHMARKS]
    if unknown:
        raise ValueError(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    return [name for name in BENCHMARKS if name in wanted]


def run_benchmarks(ctx: Context, ids: Iterable[str]) -> list[Row]:
    """Run each benchmark in ``ids`` and return all their rows."""
    rows: list[Row] = []
    for bench_id in ids:
        module_name, what, target = BENCHMARKS[bench_id]
        ctx.log(f"{bench_id}: {what}")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            rows.append(unmeasured(bench_id, "postgres", what, target, "waits", "waits for the cost-report issue"))
            continue
        try:
            rows += _normalise(bench_id, _call(module, ctx, ctx.sizes.get(bench_id)), what, target)
        except Exception as exc:
            traceback.print_exc()
            rows.append(unmeasured(bench_id, "-", what, target, "error", f"{type(exc).__name__}: {exc}"))
        ctx.log(f"{bench_id} done")
    return rows


def _call(module: Any, ctx: Context, sizes: Any) -> Any:
    """Call the module's ``run(ctx)`` (``run(ctx, sizes)`` with an override); a coroutine runs on a fresh loop."""
    result = module.run(ctx) if sizes is None else module.run(ctx, sizes)
    return asyncio.run(result) if inspect.isawaitable(result) else result


def _normalise(bench_id: str, result: Any, what: str, target: Target) -> list[Row]:
    """Rows from what an entry function returned: a Row, a list of them, or dicts with the Row's fields."""
    items = result if isinstance(result, list) else [result]
    rows = []
    for item in items:
        if isinstance(item, Row):
            rows.append(item)
            continue
        fields = dict(item)
        fields.setdefault("id", bench_id)
        fields.setdefault("variant", "postgres")
        fields.setdefault("what", what)
        fields.setdefault("unit", "s")
        if isinstance(fields.get("target"), dict):
            fields["target"] = Target(**fields["target"])
        fields.setdefault("target", target)
        rows.append(Row(**{key: value for key, value in fields.items() if key in Row.__dataclass_fields__}))
    return rows
