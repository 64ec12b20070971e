"""``blobstore tenant``: tenants with their usage, and their quotas."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

import click

from blobstore.cli import output
from blobstore.cli.app import common_options, options, run, tenant_argument

if TYPE_CHECKING:  # the store loads when a command runs, not for --help
    from blobstore.accounting.quotas import Limit, Quota
    from blobstore.store import BlobStore

#: Size units: decimal (kB = 1000) and binary (KiB = 1024); case does not matter.
UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "pb": 10**15,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
    "pib": 2**50,
}
_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*")


def parse_size(text: str) -> int:
    """``"10GB"`` -> 10_000_000_000, ``"512MiB"`` -> 536_870_912, ``"1234"`` -> 1234; ValueError otherwise."""
    match = _SIZE.fullmatch(text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in UNITS:
        raise ValueError(f"{text!r} is not a size: use a number of bytes or e.g. 10GB, 512MiB, 1.5TB")
    try:
        value = Decimal(match.group(1)) * UNITS[unit]
    except InvalidOperation:  # pragma: no cover - the pattern admits only plain decimals
        raise ValueError(f"{text!r} is not a size") from None
    if value != value.to_integral_value():
        raise ValueError(f"{text!r} is not a whole number of bytes")
    return int(value)


class Size(click.ParamType[int]):
    """A byte count with an optional unit (10GB, 512MiB)."""

    name = "size"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_size(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


@click.group()
def tenant() -> None:
    """Tenants: their usage and quotas."""


@tenant.command("ls")
@common_options
def ls() -> None:
    """Every tenant with its usage and limits."""
    quotas = run(lambda store: store.tenants())
    if options().json:
        output.echo_json([quota.to_dict() for quota in quotas])
        return
    rows = [("TENANT", "OBJECTS", "MAX OBJECTS", "BYTES", "MAX BYTES")]
    rows += [
        (
            quota.tenant,
            f"{quota.used_objects:,}",
            "-" if quota.max_objects is None else f"{quota.max_objects:,}",
            output.size_text(quota.used_bytes),
            "-" if quota.max_bytes is None else output.size_text(quota.max_bytes),
        )
        for quota in quotas
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        click.echo("  ".join(cells).rstrip())


@tenant.group()
def quota() -> None:
    """Show or set a tenant's limits on stored bytes and objects."""


@quota.command("show")
@tenant_argument
@common_options
def show(tenant: str) -> None:
    """A tenant's usage and limits (a tenant that never stored anything has neither)."""
    _echo_quota(run(lambda store: store.quota(tenant)))


@quota.command("set")
@tenant_argument
@click.option("--max-bytes", type=Size(), metavar="N", help="Limit stored bytes: a count or e.g. 10GB, 512MiB.")
@click.option("--max-objects", type=click.IntRange(min=0), metavar="N", help="Limit stored objects (keys).")
@click.option("--clear-bytes", is_flag=True, help="Remove the byte limit.")
@click.option("--clear-objects", is_flag=True, help="Remove the object limit.")
@common_options
def set_(tenant: str, max_bytes: int | None, max_objects: int | None, clear_bytes: bool, clear_objects: bool) -> None:
    """Set a tenant's limits; limits not mentioned stay as they are.

    Usage counts the tenant's keys and the sum of their sizes (before dedup).
    A put or copy that would cross a limit fails and stores nothing; a limit
    below current usage keeps existing data but blocks growth.

    \b
      blobstore tenant quota set acme --max-bytes 10GB --max-objects 100000
      blobstore tenant quota set acme --clear-bytes
    """
    if max_bytes is not None and clear_bytes:
        raise click.UsageError("--max-bytes and --clear-bytes contradict each other")
    if max_objects is not None and clear_objects:
        raise click.UsageError("--max-objects and --clear-objects contradict each other")
    from blobstore.accounting.quotas import KEEP

    new_bytes: Limit = None if clear_bytes else KEEP if max_bytes is None else max_bytes
    new_objects: Limit = None if clear_objects else KEEP if max_objects is None else max_objects
    if new_bytes is KEEP and new_objects is KEEP:
        raise click.UsageError("nothing to set: give --max-bytes, --max-objects, --clear-bytes or --clear-objects")

    async def work(store: BlobStore) -> Quota:
        return await store.set_quota(tenant, max_bytes=new_bytes, max_objects=new_objects)

    _echo_quota(run(work, creates=True))


def _echo_quota(result: Quota) -> None:
    if options().json:
        output.echo_json(result.to_dict())
        return
    click.echo(f"tenant   {result.tenant}")
    click.echo(f"objects  {result.used_objects:,} {_limit(result.max_objects, result.used_objects, sizes=False)}")
    used = f"{output.size_text(result.used_bytes)} ({result.used_bytes:,} bytes)"
    click.echo(f"bytes    {used} {_limit(result.max_bytes, result.used_bytes, sizes=True)}")


def _limit(limit: int | None, used: int, *, sizes: bool) -> str:
    """``of 1.0 GB (1,000,000,000 bytes, 42.0% used)``, ``of 100 (4.0% used)`` or ``(no limit)``."""
    if limit is None:
        return "(no limit)"
    shown = f"of {output.size_text(limit)} ({limit:,} bytes" if sizes else f"of {limit:,} ("
    share = f"{100 * used / limit:.1f}% used" if limit else "full"
    return f"{shown}{', ' if sizes else ''}{share})"


COMMANDS = [tenant]
