"""``blobstore lifecycle``: tenants' expiry rules by key prefix, and the run that deletes expired keys."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from blobstore.cli import output
from blobstore.cli.app import Duration, common_options, options, run, tenant_argument
from blobstore.model.durations import duration_text
from blobstore.model.keys import validate_prefix
from blobstore.model.wording import counted

if TYPE_CHECKING:  # the store loads when a command runs, not for --help
    from blobstore.maintenance.lifecycle import ExpiryStats
    from blobstore.maintenance.transitions import TransitionStats
    from blobstore.model.lifecycle import Rule
    from blobstore.store import BlobStore


def _prefix(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    return value if ctx.resilient_parsing or value is None else validate_prefix(value)


prefix_option = click.option(
    "--prefix", required=True, callback=_prefix, help="The rule's key prefix (literally; '' for every key)."
)


@click.group()
def lifecycle() -> None:
    """Lifecycle rules: delete a tenant's keys under a prefix once they are old enough, move cold blobs to a
    colder storage class."""


@lifecycle.command("set")
@tenant_argument
@prefix_option
@click.option("--expire-after", type=Duration(), help="Age at which keys expire: 7d, 12h, 30m, 3600s.")
@click.option("--transition-after", type=Duration(), help="Age (and time unread) after which blobs cool: 30d.")
@click.option(
    "--storage-class",
    help="The class cold blobs move to: INTELLIGENT_TIERING, STANDARD_IA, ONEZONE_IA or GLACIER_IR.",
)
@common_options
def set_(
    tenant: str, prefix: str, expire_after: int | None, transition_after: int | None, storage_class: str | None
) -> None:
    """Set the rule of TENANT's keys under --prefix (what is not given is kept): expire them once they were
    last written --expire-after ago, and/or move their blobs to --storage-class once every key holding a blob,
    in every tenant, is --transition-after old under a rule that allows it and nobody read the blob for that
    long. The longest matching prefix decides; a put's own expiry (expires_in) applies too. Changes happen at
    the next `blobstore lifecycle run` (or a server's background loop).

    \b
      blobstore lifecycle set acme --prefix tmp/ --expire-after 7d
      blobstore lifecycle set acme --prefix logs/ --transition-after 30d --storage-class STANDARD_IA
    """
    if expire_after is None and transition_after is None and storage_class is None:
        raise click.UsageError("give --expire-after, or --transition-after with --storage-class")
    if (transition_after is None) != (storage_class is None):
        raise click.UsageError("--transition-after and --storage-class go together")
    rule = run(
        lambda store: store.set_lifecycle_rule(
            tenant,
            prefix,
            expire_after=expire_after,
            transition_after=transition_after,
            storage_class=storage_class,
        ),
        creates=True,
    )
    _echo_rules([rule])


@lifecycle.command("ls")
@click.argument("tenant", required=False)
@common_options
def ls(tenant: str | None) -> None:
    """Every tenant's expiry rules, or TENANT's."""
    _echo_rules(run(lambda store: store.lifecycle_rules(tenant)))


@lifecycle.command("rm")
@tenant_argument
@prefix_option
@common_options
def rm(tenant: str, prefix: str) -> int:
    """Remove TENANT's rule of exactly --prefix; exit 1 if there is none."""
    removed = run(lambda store: store.remove_lifecycle_rule(tenant, prefix))
    if options().json:
        output.echo_json({"tenant": tenant, "prefix": prefix, "removed": removed})
    elif removed:
        click.echo(f"removed the rule of {tenant} {prefix!r}")
    if not removed:
        output.error_line(f"{tenant} has no lifecycle rule of prefix {prefix!r}")
        return output.EXIT_ERROR
    return 0


@lifecycle.command("run", short_help="Delete expired keys, move blobs between storage classes.")
@click.option("--dry-run", is_flag=True, help="Count what would expire or move; change nothing.")
@click.option("--batch", type=click.IntRange(1, 10_000), default=500, show_default=True, help="Keys (blobs) per batch.")
@common_options
def run_(dry_run: bool, batch: int) -> None:
    """Delete every key that has expired, by its tenant's rules or its own expiry, as ordinary deletes: the
    bytes go at a later `blobstore gc` once no other key references them. Then move each blob whose every key,
    in every tenant, is cold under a transition rule to that rule's storage class, and each blob read or
    written again since back to STANDARD. Safe beside writers and other runs."""

    async def both(store: BlobStore) -> tuple[ExpiryStats, TransitionStats]:
        return await store.expire(dry_run=dry_run, batch=batch), await store.transition(dry_run=dry_run, batch=batch)

    stats, moves = run(both)
    if options().json:
        output.echo_json({**stats.to_dict(), "transitions": moves.to_dict()})
        return
    verb = "would expire" if dry_run else "expired"
    abort = "would abort" if dry_run else "aborted"
    for name, each in stats.tenants.items():
        uploads = f"; {abort} {counted(each.uploads_aborted, 'S3 multipart upload')}" if each.uploads_aborted else ""
        click.echo(f"{name}  {verb} {counted(each.keys, 'key')} ({output.size_text(each.bytes)}){uploads}")
    click.echo(f"{verb} {counted(stats.keys, 'key')} ({output.size_text(stats.bytes)}) in all")
    move = "would move" if dry_run else "moved"
    for storage_class, moved in sorted(moves.classes.items()):
        click.echo(f"{move} {counted(moved.blobs, 'blob')} ({output.size_text(moved.bytes)}) to {storage_class}")
    if moves.too_large:
        click.echo(f"left {counted(moves.too_large, 'blob')} over 5 GiB in their class")


def _echo_rules(rules: list[Rule]) -> None:
    if options().json:
        output.echo_json([rule.to_dict() for rule in rules])
        return
    rows = [("TENANT", "PREFIX", "EXPIRE AFTER", "ABORT UPLOADS AFTER", "TRANSITION")]
    rows += [
        (
            rule.tenant,
            repr(rule.prefix),
            _duration(rule.expire_after),
            _duration(rule.abort_multipart_after),
            _transition(rule),
        )
        for rule in rules
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(5)]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _transition(rule: Rule) -> str:
    """``STANDARD_IA after 30d``, or ``-``."""
    if rule.transition_after is None:
        return "-"
    return f"{rule.storage_class} after {duration_text(rule.transition_after)}"


def _duration(seconds: int | None) -> str:
    return "-" if seconds is None else duration_text(seconds)


COMMANDS = [lifecycle]
