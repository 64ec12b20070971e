"""``python -m benchmarks [--quick|--full] [--only P1,P3] [--json PATH] [--markdown PATH]``.

Prints the results table on stdout (progress goes to stderr) and writes the
JSON document; exits 0 even when a target is missed (the table says so),
and 1 only when a benchmark could not run at all. ``--from-json PATH``
renders a saved document again (table, ``--markdown``) without running anything.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.deployments import postgres_reachable
from benchmarks.harness import Context
from benchmarks.output import machine_info, markdown, rows_from_json, text_table, to_json, write_json
from benchmarks.runner import parse_only, run_benchmarks
from tests.support.servers import LOCAL_POSTGRES

DEFAULT_JSON = Path(__file__).parent / "results" / "latest.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[1])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small sizes, a few minutes (the default)")
    size.add_argument("--full", action="store_true", help="the sizes of the issue (1 GiB, 1,000,000 keys, ...)")
    parser.add_argument("--only", help="comma-separated ids, e.g. P1,P3")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"default {DEFAULT_JSON}")
    parser.add_argument("--markdown", type=Path, help="also write the table as Markdown (benchmarks/LATEST.md)")
    parser.add_argument("--workdir", type=Path, help="where scratch files go (default: a temp dir)")
    parser.add_argument("--no-postgres", action="store_true", help="skip the PostgreSQL variants")
    parser.add_argument("--no-s3", action="store_true", help="skip the S3 (moto) variants")
    parser.add_argument("--from-json", type=Path, help="render this saved JSON document instead of running")
    args = parser.parse_args(argv)
    if args.from_json:
        return _render(args.from_json, args.markdown)
    try:
        ids = parse_only(args.only)
    except ValueError as exc:
        parser.error(str(exc))
    mode = "full" if args.full else "quick"

    admin_url: str | None = os.environ.get("BLOBSTORE_TEST_DATABASE_URL") or LOCAL_POSTGRES
    if args.no_postgres:
        admin_url = None
    elif problem := postgres_reachable(admin_url):
        print(f"warning: {problem}; PostgreSQL variants are skipped", file=sys.stderr)
        admin_url = None

    workdir = Path(tempfile.mkdtemp(prefix="blobstore-bench-", dir=args.workdir))
    ctx = Context(quick=mode == "quick", workdir=workdir, postgres_admin_url=admin_url, s3=not args.no_s3)
    machine = machine_info()
    started = time.monotonic()
    try:
        rows = run_benchmarks(ctx, ids)
    finally:
        ctx.log(f"removing {workdir}")
        shutil.rmtree(workdir, ignore_errors=True)
    seconds = time.monotonic() - started

    print(text_table(rows))
    command = ("python -m benchmarks " + shlex.join(argv if argv is not None else sys.argv[1:])).strip()
    write_json(args.json, {"command": command, **to_json(rows, machine, mode, seconds)})
    print(f"\n{mode} mode, {seconds:.0f} s; JSON in {args.json}", file=sys.stderr)
    if args.markdown:
        args.markdown.write_text(markdown(rows, machine, mode, command))
    return 1 if any(row.status == "error" for row in rows) else 0


def _render(path: Path, markdown_path: Path | None) -> int:
    document = json.loads(path.read_text())
    rows = rows_from_json(document)
    print(text_table(rows))
    if markdown_path:
        command = document.get("command") or f"python -m benchmarks --{document['mode']}"
        markdown_path.write_text(markdown(rows, document["machine"], document["mode"], command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
