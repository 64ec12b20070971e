"""``blobstore gc``, ``blobstore fsck`` and ``blobstore compact``: reclaiming space, checking consistency and
rewriting blobs stored before frames."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from blobstore.cli import output
from blobstore.cli.app import common_options, options, run, tenant_option
from blobstore.model.wording import counted

if TYPE_CHECKING:  # the store loads when a command runs, not for --help
    from blobstore.maintenance.fsck import FsckReport
    from blobstore.protocol.compact import CompactStats
    from blobstore.protocol.gc import GcStats, Planned
    from blobstore.store import BlobStore


@click.command(short_help="Reclaim unreferenced objects past the grace period.")
@click.option("--dry-run", is_flag=True, help="Print what would be reclaimed; change nothing.")
@common_options
def gc(dry_run: bool) -> None:
    """Reclaim objects unreferenced for longer than BLOBSTORE_GC_GRACE, orphans and stale uploads.

    Safe to run at any time, alongside writers and other gc runs.
    """
    as_json = options().json

    def planned(item: Planned) -> None:
        if not dry_run or as_json:
            return
        size = "" if item.size is None else f"  {output.size_text(item.size)}"
        if item.kind.startswith("foreign"):
            click.echo(f"leaving {item.key}{size}  ({item.reason})")
        else:
            click.echo(f"would delete {item.key}{size}  ({item.reason})")

    async def work(store: BlobStore) -> GcStats:
        with output.phase_progress() as progress:
            return await store.gc(dry_run=dry_run, progress=progress, on_planned=planned)

    stats = run(work)
    if as_json:
        output.echo_json(stats.to_dict())
        return
    verb = "would reclaim" if dry_run else "reclaimed"
    abort = "would abort" if dry_run else "aborted"
    foreign = stats.foreign_objects + stats.foreign_uploads
    foreign_text = counted(foreign, "foreign object and upload", "foreign objects and uploads")
    left = f"; left {foreign_text} alone" if foreign else ""
    if expired := stats.multipart_uploads_expired:
        click.echo(f"{abort} {counted(expired, 'expired S3 multipart upload')}")
    click.echo(
        f"{verb} {counted(stats.blobs_reclaimed, 'blob')} ({output.size_text(stats.bytes_reclaimed)}) and "
        f"{counted(stats.orphans_deleted, 'orphan object')} ({output.size_text(stats.orphan_bytes)}); "
        f"{abort} {counted(stats.incomplete_uploads_aborted, 'incomplete upload')}{left} "
        f"in {stats.duration_seconds:.1f}s"
    )
    if stats.next_reclaimable_at is not None:
        waits = "waits" if stats.blobs_waiting == 1 else "wait"
        click.echo(
            f"{counted(stats.blobs_waiting, 'unreferenced blob')} ({output.size_text(stats.bytes_waiting)}) {waits} "
            f"out the grace period (BLOBSTORE_GC_GRACE), the first reclaimable from "
            f"{output.time_text(stats.next_reclaimable_at)} UTC"
        )


@click.command(short_help="Check that the database and storage agree.")
@click.option("--read-data", is_flag=True, help="Also re-hash every object (reads all the bytes).")
@click.option("--repair", is_flag=True, help="Fix counter drift and reclaim what is past grace.")
@common_options
def fsck(read_data: bool, repair: bool) -> int:
    """Check that the database and object storage agree; exit 1 if a problem remains unrepaired."""

    async def work(store: BlobStore) -> FsckReport:
        with output.phase_progress() as progress:
            return await store.fsck(read_data=read_data, repair=repair, progress=progress)

    report = run(work)
    if options().json:
        output.echo_json(report.to_dict())
    else:
        for problem in report.problems:
            state = "repaired" if problem.repaired else "PROBLEM"
            click.echo(f"{state}: {problem.kind}: {problem.subject}: {problem.detail}")
        if report.unlisted:
            counts = ", ".join(f"{kind} {count}" for kind, count in sorted(report.problem_counts.items()))
            click.echo(f"... and {report.unlisted} more problems (in all: {counts})")
        for key in report.foreign_sample:
            click.echo(f"foreign (left alone): {key}")
        click.echo(
            f"checked {report.blobs_checked} blobs, {report.objects_checked} objects"
            + (f", hashed {output.size_text(report.bytes_hashed)}" if read_data else "")
            + (f", {report.foreign_objects} foreign objects left alone" if report.foreign_objects else "")
            + f": {'ok' if report.ok else 'problems found'}"
        )
    return 0 if report.ok else output.EXIT_ERROR


@click.command(short_help="Rewrite blobs stored before frames as compressed, verified frames.")
@tenant_option("Only the blobs this tenant references.")
@click.option("--dry-run", is_flag=True, help="Estimate the bytes saved by compressing; write nothing.")
@common_options
def compact(tenant: str | None, dry_run: bool) -> int:
    """Rewrite blobs stored before frames (raw) as frames, each verified before the catalog switches to it.

    Safe to run at any time, alongside writers, readers and gc; an interrupted run resumes where it stopped.
    The old objects are reclaimed by gc after BLOBSTORE_GC_GRACE. Exit 1 if a blob could not be rewritten.
    """

    async def work(store: BlobStore) -> CompactStats:
        with output.phase_progress() as progress:
            return await store.compact(tenant=tenant, dry_run=dry_run, progress=progress)

    stats = run(work)
    if options().json:
        output.echo_json(stats.to_dict())
    else:
        for failure in stats.failures:
            output.notice(f"could not compact {failure}")
        verb = "would rewrite" if dry_run else "rewrote"
        saved = "would save" if dry_run else "saved"
        share = f" ({stats.bytes_saved / stats.bytes_before:.0%})" if stats.bytes_before else ""
        skipped = f"; skipped {counted(stats.blobs_skipped, 'blob')} changed meanwhile" if stats.blobs_skipped else ""
        click.echo(
            f"{verb} {counted(stats.blobs_rewritten, 'blob')}: {output.size_text(stats.bytes_before)} before, "
            f"{output.size_text(stats.bytes_after)} after, {saved} {output.size_text(stats.bytes_saved)}{share}"
            f"{skipped} in {stats.duration_seconds:.1f}s"
        )
    return output.EXIT_ERROR if stats.failures else 0


COMMANDS = [gc, fsck, compact]
