"""``blobstore import`` (with ``--dry-run``) and ``blobstore export``: whole trees in and out of a tenant."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

import click

from blobstore import transfer
from blobstore.accounting.pricing import PRESETS
from blobstore.cli import output
from blobstore.cli.app import common_options, options, run, tenant_argument
from blobstore.model.wording import counted
from blobstore.transfer.formats import FORMATS, render_html, render_json, render_table

if TYPE_CHECKING:  # the store and the transfers load when a command runs, not for --help
    from blobstore.store import BlobStore
    from blobstore.transfer import DryRun, ExportResult, Failure, ImportResult

#: Width of tables when stdout is not a terminal (a file or a pipe): wide enough never to wrap.
PIPE_WIDTH = 200
DEFAULT_JOBS = 4

_jobs_option = click.option(
    "-j",
    "--jobs",
    type=click.IntRange(1, 256),
    default=DEFAULT_JOBS,
    show_default=True,
    help="Files transferred at the same time.",
)


@click.command("import", short_help="Import a directory or an S3 bucket; --dry-run shows the savings first.")
@tenant_argument
@click.argument("source", metavar="SOURCE")
@click.option("--prefix", default="", metavar="P", help="Key = P + path relative to SOURCE (add your own '/').")
@click.option("--dry-run", is_flag=True, help="Read and hash everything, store nothing, report savings and cost.")
@_jobs_option
@click.option("--include", multiple=True, metavar="GLOB", help="Import only matching files (path or name); repeatable.")
@click.option("--exclude", multiple=True, metavar="GLOB", help="Leave out matching files (path or name); repeatable.")
@click.option("--source-endpoint-url", metavar="URL", help="S3 endpoint of an s3:// SOURCE (MinIO, R2, ...).")
@click.option("--source-profile", metavar="NAME", help="AWS profile for an s3:// SOURCE (default: the usual chain).")
@click.option("--pricing", type=click.Choice(list(PRESETS)), help="Dry run: price list (default aws-s3-standard).")
@click.option(
    "--format", "fmt", type=click.Choice(FORMATS), help="Dry run: table (default), json or html. --json = json."
)
@common_options
def import_(
    tenant: str,
    source: str,
    prefix: str,
    dry_run: bool,
    jobs: int,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    source_endpoint_url: str | None,
    source_profile: str | None,
    pricing: str | None,
    fmt: str | None,
) -> None:
    """Import every file under SOURCE (a directory or s3://bucket[/prefix]) into TENANT.

    \b
      blobstore import acme ./uploads --prefix uploads/ --dry-run
      blobstore import acme ./uploads --prefix uploads/ --jobs 8
      blobstore import acme s3://old-bucket/photos --prefix photos/ --source-endpoint-url http://minio:9000

    Keys are P + each file's path relative to SOURCE; a name that cannot be a
    key is reported, not renamed. Run it again after an interruption: files
    already imported (same size and digest) are skipped and nothing is stored
    twice. Files that fail are listed at the end and the exit status is 1.
    """
    if options().json:
        if fmt not in (None, "json"):
            raise click.UsageError(f"--json conflicts with --format {fmt}")
        fmt = "json"
    if not dry_run and (pricing is not None or fmt == "html"):
        raise click.UsageError("--pricing and --format html go with --dry-run")

    async def work(store: BlobStore) -> DryRun | ImportResult:
        opened = transfer.open_source(
            source, endpoint_url=source_endpoint_url, profile=source_profile, skip=_store_folders(store)
        )
        async with opened as files:
            plan = await transfer.plan_import(files, prefix=prefix, include=include, exclude=exclude)
            verb = "dry run" if dry_run else "import"
            with output.transfer_progress(f"{verb} {tenant}", plan.total_bytes, files=len(plan.entries)) as advance:
                if dry_run:
                    return await transfer.dry_run(
                        store, tenant, files, plan, jobs=jobs, pricing=pricing, progress=advance
                    )
                return await transfer.import_source(store.tenant(tenant), files, plan, jobs=jobs, progress=advance)

    result = run(work, creates=not dry_run)
    if isinstance(result, transfer.DryRun):
        _print_dry_run(result, fmt or "table")
        return
    if fmt == "json":
        output.echo_json(result.to_dict())
    else:
        click.echo(
            f"imported {counted(result.imported, 'file')}, {output.size_text(result.imported_bytes)} "
            f"({result.deduplicated:,} deduplicated); skipped {counted(result.skipped, 'file')} already imported"
            + (f"; {result.excluded:,} left out by --include/--exclude" if result.excluded else "")
        )
        _echo_failures(result.failures)
    _fail_if_any(result.failures, "imported")


def _store_folders(store: BlobStore) -> list[Path]:
    """The store's own folders (its home, a file:// storage), never imported even when inside SOURCE."""
    folders = [store.settings.home]
    storage = urlsplit(store.settings.storage_url)
    if storage.scheme == "file":
        folders.append(Path(unquote(storage.path)))
    return folders


def _print_dry_run(report: DryRun, fmt: str) -> None:
    from rich.console import Console

    if fmt == "json":
        click.echo(render_json(report), nl=False)
    elif fmt == "html":
        click.echo(render_html(report), nl=False)
    else:
        console = Console(file=sys.stdout)
        if not console.is_terminal:
            console = Console(file=sys.stdout, width=PIPE_WIDTH, color_system=None)
        console.print(render_table(report))


@click.command(short_help="Write a tenant's keys back out to a directory, verifying every digest.")
@tenant_argument
@click.argument("dest", metavar="DEST")
@click.option("--prefix", default="", metavar="P", help="Export the keys starting with P, as DEST/<key without P>.")
@_jobs_option
@common_options
def export(tenant: str, dest: str, prefix: str, jobs: int) -> None:
    """Write TENANT's keys (under P) to the directory DEST, verifying every digest.

    \b
      blobstore export acme ./restore --prefix uploads/

    Key P + path becomes DEST/path, written to a temporary file and renamed
    once its digest checked out. Nothing is written outside DEST or through a
    symbolic link. Run it again after an interruption: files already there
    with the right size and digest are skipped. Keys that fail are listed at
    the end and the exit status is 1.
    """

    async def work(store: BlobStore) -> ExportResult:
        handle = store.tenant(tenant)
        plan = await transfer.plan_export(handle, prefix)
        if not plan:
            raise click.ClickException(f"nothing to export: tenant {tenant} has no keys under {prefix!r}")
        total = sum(info.size for info in plan)
        with output.transfer_progress(f"export {tenant}", total, files=len(plan)) as advance:
            return await transfer.export_tree(handle, Path(dest), plan, prefix=prefix, jobs=jobs, progress=advance)

    result = run(work)
    if options().json:
        output.echo_json(result.to_dict())
    else:
        click.echo(
            f"exported {counted(result.written, 'file')}, {output.size_text(result.written_bytes)} to {dest}; "
            f"skipped {counted(result.skipped, 'file')} already there"
        )
        _echo_failures(result.failures)
    _fail_if_any(result.failures, "exported")


def _echo_failures(failures: list[Failure]) -> None:
    for failure in failures:
        click.echo(f"failed {failure.path}: {failure.reason}")


def _fail_if_any(failures: list[Failure], verb: str) -> None:
    if failures:
        raise click.ClickException(f"{counted(len(failures), 'file')} could not be {verb} (listed above)")


COMMANDS = [import_, export]
