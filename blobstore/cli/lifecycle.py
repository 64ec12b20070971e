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
    from blobstore.model.lifecycle import Rule


def _prefix(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    return value if ctx.resilient_parsing or value is None else validate_prefix(value)


prefix_option = click.option(
    "--prefix", required=True, callback=_prefix, help="The rule's key prefix (literally; '' for every key)."
)


@click.group()
def lifecycle() -> None:
    """Expiry rules: delete a tenant's keys under a prefix once they are old enough."""


@lifecycle.command("set")
@tenant_argument
@prefix_option
@click.option("--expire-after", type=Duration(), required=True, help="Age at which keys expire: 7d, 12h, 30m, 3600s.")
@common_options
def set_(tenant: str, prefix: str, expire_after: int) -> None:
    """Expire TENANT's keys under --prefix once they were last written --expire-after ago (replacing the
    prefix's rule). The longest matching prefix decides; a put's own expiry (expires_in) applies too, whichever
    comes first. Keys go at the next `blobstore lifecycle run` (or a server's background loop).

    \b
      blobstore lifecycle set acme --prefix tmp/ --expire-after 7d
    """
    rule = run(lambda store: store.set_lifecycle_rule(tenant, prefix, expire_after=expire_after), creates=True)
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


@lifecycle.command("run", short_help="Delete expired keys.")
@click.option("--dry-run", is_flag=True, help="Count what would expire; change nothing.")
@click.option("--batch", type=click.IntRange(1, 10_000), default=500, show_default=True, help="Keys per transaction.")
@common_options
def run_(dry_run: bool, batch: int) -> None:
    """Delete every key that has expired, by its tenant's rules or its own expiry, as ordinary deletes: the
    bytes go at a later `blobstore gc` once no other key references them. Safe beside writers and other runs."""

    stats = run(lambda store: store.expire(dry_run=dry_run, batch=batch))
    if options().json:
        output.echo_json(stats.to_dict())
        return
    verb = "would expire" if dry_run else "expired"
    abort = "would abort" if dry_run else "aborted"
    for name, each in stats.tenants.items():
        uploads = f"; {abort} {counted(each.uploads_aborted, 'S3 multipart upload')}" if each.uploads_aborted else ""
        click.echo(f"{name}  {verb} {counted(each.keys, 'key')} ({output.size_text(each.bytes)}){uploads}")
    click.echo(f"{verb} {counted(stats.keys, 'key')} ({output.size_text(stats.bytes)}) in all")


def _echo_rules(rules: list[Rule]) -> None:
    if options().json:
        output.echo_json([rule.to_dict() for rule in rules])
        return
    rows = [("TENANT", "PREFIX", "EXPIRE AFTER", "ABORT UPLOADS AFTER")]
    rows += [
        (rule.tenant, repr(rule.prefix), _duration(rule.expire_after), _duration(rule.abort_multipart_after))
        for rule in rules
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _duration(seconds: int | None) -> str:
    return "-" if seconds is None else duration_text(seconds)


COMMANDS = [lifecycle]
