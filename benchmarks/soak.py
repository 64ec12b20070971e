"""``python -m benchmarks.soak --minutes N [--workers K] [--seed S] [--json FILE]``: a soak with faults, then an audit.

K operations workers (mixed put/get/copy/delete/list), a GC loop and an
fsck --read-data loop run as OS processes on one scratch PostgreSQL database
and one S3 bucket (moto's server over HTTP, or the servers that
``BLOBSTORE_TEST_DATABASE_URL`` / ``BLOBSTORE_TEST_S3_ENDPOINT`` name) with a
short GC grace period, while faults are injected: storage calls fail with
StorageUnavailable at ``--fault-rate`` inside the workers, random database
backends are terminated every 0.5-3 s, and a process is SIGKILLed (and
restarted) every minute, at least twice in any run; and in the middle of the
run the network to S3 is cut for ``--outage`` seconds (a proxy in front of
it stops), while every process has a spool (docs/spool.md): puts of new
bytes land in the spool, one process killed a third of the way in restarts
while S3 does not answer, and the GC loop drains the spool once S3 answers
again. Then the audit
(:mod:`benchmarks.soak_audit`) checks the store exactly against the
workers' journals. Prints operations by kind, errors by class, faults and
kills, and the audit; exits 1 if anything failed: an audit problem, a
violation seen during the run, an error other than StorageUnavailable, or a
process that crashed or hung.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shlex
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from benchmarks.soak_audit import audit
from benchmarks.soak_fleet import ROOT, Fleet, Member, drop_connections, kill_workers, log, members
from benchmarks.soak_model import Model, read_journal
from blobstore import BlobStore, Settings
from tests.support.s3_server import s3_endpoint, temporary_bucket
from tests.support.servers import ServerUnavailable, postgres_server, scratch_database
from tests.support.tcp_proxy import TcpProxy, proxied

#: Error classes the product documents for the faults the soak injects; any other is a failure.
EXPECTED_ERRORS = frozenset({"StorageUnavailable"})
#: How many failures and audit problems the printed summary shows.
SHOWN = 10
#: The spool every soak process shares (one node): puts of new bytes go there while S3 is cut off.
SPOOL_BYTES = 1 << 30


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.split("\n\n")[1])
    parser.add_argument("--minutes", type=float, required=True, help="how long the workers run")
    parser.add_argument("--workers", type=int, default=4, help="operations worker processes (default 4)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fault-rate", type=float, default=0.02, help="share of storage calls that fail")
    parser.add_argument("--grace", type=float, default=1.0, help="BLOBSTORE_GC_GRACE in seconds (default 1)")
    parser.add_argument("--lease", type=float, default=10.0, help="upload lease in seconds (default 10)")
    parser.add_argument(
        "--outage",
        type=float,
        help="seconds the network to S3 is cut in the middle of the run (default: a sixth of it, at most 120; 0: none)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    parser.add_argument("--workdir", type=Path, help="where journals and logs go (default: a temp dir)")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.workers < 1:
        parser.error("--minutes must be positive and --workers at least 1")
    if args.outage is None:
        args.outage = min(120.0, args.minutes * 10)
    if not 0 <= args.outage < args.minutes * 60:
        parser.error("--outage must be at least 0 and shorter than the run")
    workdir = Path(tempfile.mkdtemp(prefix="blobstore-soak-", dir=args.workdir))
    try:
        document = asyncio.run(soak(args, workdir))
    except ServerUnavailable as exc:
        print(f"soak: {exc}", file=sys.stderr)
        return 1
    command = ("python -m benchmarks.soak " + shlex.join(argv if argv is not None else sys.argv[1:])).strip()
    document = {"command": command, **document}
    print(render(document))
    if args.json:
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    if document["passed"]:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"journals and logs kept in {workdir}", file=sys.stderr)
    return 0 if document["passed"] else 1


async def soak(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Run the fleet with faults for ``args.minutes``, then audit; the figures as a JSON-able document."""
    with (
        postgres_server() as admin_url,
        scratch_database(admin_url) as database_url,
        s3_endpoint() as endpoint,
        proxied(*_address(endpoint.url)) as proxy,
    ):
        async with temporary_bucket(endpoint) as bucket:
            settings = Settings(
                home=workdir / "home",
                database_url=database_url,
                storage_url=f"s3://{bucket}/soak",
                s3_endpoint_url=f"http://127.0.0.1:{proxy.port}",
                s3_region=endpoint.region,
                gc_grace_seconds=args.grace,
                upload_lease_seconds=args.lease,
                spool_dir=workdir / "spool",
                spool_max_bytes=SPOOL_BYTES,
                node_id="soak",
            )
            await (await BlobStore.open(settings, migrate_schema=True)).close()
            duration = args.minutes * 60
            options = ["--seed", str(args.seed), "--fault-rate", repr(args.fault_rate), "--lease", repr(args.lease)]
            fleet = Fleet(members(workdir, args.workers), worker_env(settings), time.time() + duration, options)
            rng = random.Random(args.seed)
            log(fleet.started, f"soak: {args.workers} workers + GC + fsck for {duration:.0f} s in {workdir}")
            dropping = asyncio.ensure_future(drop_connections(database_url, fleet.until, random.Random(rng.random())))
            killing = asyncio.ensure_future(kill_workers(fleet, min(60.0, duration / 3), rng))
            outage_at = (duration - args.outage) / 2
            cutting = asyncio.ensure_future(
                cut_storage(proxy, fleet, outage_at, args.outage, random.Random(rng.random()))
            )
            await fleet.run()
            dropped = await dropping
            await killing
            await cutting
            log(fleet.started, "workers stopped; auditing")
            models = [Model.replay(m.index, read_journal(m.journal)) for m in fleet.members if m.role == "ops"]
            result = await audit(settings, models, wait=max(args.grace, args.lease) + 1.0)
    figures = summarize(fleet.members)
    injected = figures.pop("injected")
    violations = figures.pop("violations") + [v for model in models for v in model.violations]
    failures = violations + [c for m in fleet.members for c in m.crashes] + fleet.hung
    return {
        "minutes": args.minutes,
        "workers": args.workers,
        "seed": args.seed,
        "grace_seconds": args.grace,
        "lease_seconds": args.lease,
        "deployment": {"database": "PostgreSQL", "storage": f"S3 at {endpoint.url}"},
        **figures,
        "faults": {
            "storage_errors_injected": injected,
            "db_connections_terminated": dropped,
            "s3_outage_seconds": args.outage,
            "sigkills": sum(m.kills for m in fleet.members),
            "killed": {m.name: m.kills for m in fleet.members if m.kills},
        },
        "failures": failures,
        "audit": result.to_dict(),
        "passed": result.passed and not failures and not figures["unexpected_errors"],
    }


def _address(url: str) -> tuple[str | None, int]:
    parts = urlsplit(url)
    return parts.hostname, parts.port or 80


async def cut_storage(proxy: TcpProxy, fleet: Fleet, after: float, seconds: float, rng: random.Random) -> None:
    """``after`` seconds into the run, cut the network to S3 for ``seconds`` (no outage if 0); a third of the way
    in, SIGKILL a random member, which restarts while S3 does not answer (with the spool, it starts anyway and
    pairs with S3 once it is back: docs/spool.md)."""
    if seconds <= 0:
        return
    await asyncio.sleep(after)
    log(fleet.started, f"S3 outage: the network to S3 is cut for {seconds:.0f} s")
    await asyncio.to_thread(proxy.stop)
    await asyncio.sleep(seconds / 3)
    fleet.kill(rng.choice(fleet.members))
    await asyncio.sleep(seconds * 2 / 3)
    await asyncio.to_thread(proxy.start)
    log(fleet.started, "S3 outage over: the network to S3 is back")


def worker_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a soak worker open the store of ``settings``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("BLOBSTORE_")}
    env.update(
        BLOBSTORE_HOME=str(settings.home),
        BLOBSTORE_DATABASE_URL=settings.database_url,
        BLOBSTORE_STORAGE_URL=settings.storage_url,
        BLOBSTORE_S3_ENDPOINT_URL=settings.s3_endpoint_url or "",
        BLOBSTORE_S3_REGION=settings.s3_region,
        BLOBSTORE_GC_GRACE=str(settings.gc_grace_seconds),
        BLOBSTORE_SPOOL_DIR=str(settings.spool_dir),
        BLOBSTORE_SPOOL_MAX_BYTES=str(settings.spool_max_bytes),
        BLOBSTORE_NODE_ID=settings.node_id,
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )
    return env


def summarize(fleet: list[Member]) -> dict[str, Any]:
    """Count the journals: acknowledged calls by kind, notable outcomes, errors by class, unknown outcomes."""
    operations: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    unexpected: dict[str, dict[str, Any]] = {}
    gc: Counter[str] = Counter()
    violations: list[str] = []
    injected = unknown = 0
    for member in fleet:
        begun: set[str] = set()
        for record in read_journal(member.journal):
            if record["t"] == "begin":
                begun.add(record["id"])
            if record["t"] != "end":
                continue
            begun.discard(record["id"])
            op, outcome = record["op"], record["outcome"]
            injected += record["injected"]
            if "violation" in record:
                violations.append(f"{member.name}: {record['violation']}")
            if outcome == "error":
                errors[record["error"]] += 1
                if record["error"] not in EXPECTED_ERRORS:
                    entry = unexpected.setdefault(record["error"], {"count": 0, "calls": Counter(), "where": Counter()})
                    entry["count"] += 1
                    entry["calls"][op] += 1
                    entry["where"][record["where"]] += 1
                    entry.setdefault("example", record["detail"])
                continue
            operations[op] += 1
            if outcome != "ok":
                outcomes[f"{op} {outcome}"] += 1
            if record.get("deduplicated"):
                outcomes["put deduplicated"] += 1
            for field in ("reclaimed", "orphans", "aborted", "drained"):
                gc[field] += record.get(field, 0)
        unknown += len(begun)
    return {
        "operations": dict(operations),
        "outcomes": dict(outcomes),
        "outcome_unknown": unknown,
        "errors": dict(errors),
        "unexpected_errors": {
            name: {**e, "calls": dict(e["calls"]), "where": dict(e["where"])} for name, e in unexpected.items()
        },
        "gc": dict(gc),
        "violations": violations,
        "injected": injected,
    }


def render(doc: dict[str, Any]) -> str:
    """The figures as the text the command prints."""

    def counts(mapping: dict[str, int]) -> str:
        return ", ".join(f"{name} {count}" for name, count in sorted(mapping.items())) or "none"

    faults = doc["faults"]
    checked = doc["audit"]
    lines = [
        f"soak: {doc['command']}",
        f"  {doc['minutes']:g} min, {doc['workers']} workers + GC + fsck, {doc['deployment']['database']} + "
        f"{doc['deployment']['storage']}, GC grace {doc['grace_seconds']:g} s, "
        f"upload lease {doc['lease_seconds']:g} s, seed {doc['seed']}",
        f"operations acknowledged: {counts(doc['operations'])}",
        f"  outcomes: {counts(doc['outcomes'])}",
        f"  GC reclaimed: {counts(doc['gc'])}",
        f"  calls cut short by a SIGKILL (outcome unknown): {doc['outcome_unknown']}",
        f"errors by class: {counts(doc['errors'])}",
        f"faults: {faults['storage_errors_injected']} storage errors injected, "
        f"{faults['db_connections_terminated']} database connections terminated, "
        f"S3 cut off for {faults['s3_outage_seconds']:g} s (puts spooled, then drained: "
        f"{doc['gc'].get('drained', 0)} by the GC loop, {checked['drained']} by the audit)",
        f"kills survived: {faults['sigkills']} processes SIGKILLed mid-run and restarted ({counts(faults['killed'])})",
    ]
    for name, entry in doc["unexpected_errors"].items():
        lines.append(
            f"UNEXPECTED ERROR {name}: {entry['count']} ({counts(entry['calls'])}) at {counts(entry['where'])}"
        )
        lines.append(f"  e.g. {entry['example'][:300]!r}")
    lines += [f"FAILURE: {failure[:500]}" for failure in doc["failures"][:SHOWN]]
    if len(doc["failures"]) > SHOWN:
        lines.append(f"... and {len(doc['failures']) - SHOWN} more failures (all in the JSON)")
    verdict = "PASSED" if checked["passed"] else f"FAILED ({len(checked['problems'])} problems)"
    lines.append(
        f"audit: {verdict}; {checked['keys_checked']} keys read back ({checked['bytes_verified']} bytes), "
        f"final GC {checked['final_gc'].get('blobs_reclaimed', 0)} blobs + "
        f"{checked['final_gc'].get('orphans_deleted', 0)} orphans, "
        f"fsck --read-data {'clean' if checked['fsck'].get('ok') else 'NOT clean'}"
    )
    lines += [f"  AUDIT: {problem}" for problem in checked["problems"][:SHOWN]]
    if len(checked["problems"]) > SHOWN:
        lines.append(f"  ... and {len(checked['problems']) - SHOWN} more problems (all in the JSON)")
    lines.append(f"result: {'PASSED' if doc['passed'] else 'FAILED'}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
