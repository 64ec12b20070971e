"""``blobstore report``: the storage cost report as a table, JSON, CSV or a self-contained HTML page."""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from blobstore.accounting.pricing import PRESETS, price_list
from blobstore.accounting.report_formats import FORMATS, render_cards, render_csv, render_json, render_table
from blobstore.cli.app import common_options, options, run
from blobstore.model.keys import validate_tenant

if TYPE_CHECKING:  # the store and the report load when the command runs, not for --help
    from blobstore.accounting.report import CostReport
    from blobstore.store import BlobStore

#: Width of the table when stdout is not a terminal (a file or a pipe): wide enough never to wrap.
PIPE_WIDTH = 200
#: A width no table reaches: to measure the table's natural width.
UNBOUNDED = 10_000


def _tenant(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    return value if ctx.resilient_parsing or value is None else validate_tenant(value)


@click.command()
@click.option("--tenant", metavar="T", callback=_tenant, help="Report this tenant only (the total stays the store's).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    help="table (default), json, csv, or html (one self-contained page). --json means --format json.",
)
@click.option("--pricing", type=click.Choice(list(PRESETS)), help="A price list preset (default aws-s3-standard).")
@click.option("--price-per-gb-month", metavar="X", help="A custom storage price per GB-month instead of a preset.")
@click.option("--egress-price-per-gb", metavar="X", help="Egress price per GB (default: the preset's; custom: 0).")
@click.option(
    "--since",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    metavar="DATE",
    help="Count egress from DATE (YYYY-MM-DD, UTC) to today; default: the first day of this month.",
)
@click.option("-o", "--output", "target", metavar="FILE", help="Write the report to FILE instead of stdout.")
@click.option("--bytes", "exact", is_flag=True, help="Table: exact byte counts instead of kB/MB/GB.")
@common_options
def report(
    tenant: str | None,
    fmt: str | None,
    pricing: str | None,
    price_per_gb_month: str | None,
    egress_price_per_gb: str | None,
    since: dt.datetime | None,
    target: str | None,
    exact: bool,
) -> None:
    """Storage cost report: per tenant and for the whole store.

    Per tenant: objects, logical bytes, unique and shared bytes, attributed
    physical bytes (each blob's size split over its references, adding up
    exactly to what is stored), dedup savings, egress, and estimated cost per
    month at a price list (GB = 10^9 bytes). The total adds what awaits GC.

    \b
      blobstore report
      blobstore report --tenant acme --pricing cloudflare-r2
      blobstore report --price-per-gb-month 0.02 --egress-price-per-gb 0.05 --format csv
      blobstore report --format html -o report.html
    """
    if options().json:
        if fmt not in (None, "json"):
            raise click.UsageError(f"--json conflicts with --format {fmt}")
        fmt = "json"
    if pricing is not None and price_per_gb_month is not None:
        raise click.UsageError("give either --pricing or --price-per-gb-month, not both")
    prices = price_list(pricing, price_per_gb_month=price_per_gb_month, egress_price_per_gb=egress_price_per_gb)
    window = None if since is None else since.date()

    async def work(store: BlobStore) -> CostReport:
        return await store.report(tenant=tenant, pricing=prices, since=window)

    result = run(work)
    if fmt in (None, "table"):
        _print_table(result, exact=exact, target=target)
        return
    from blobstore.accounting.report_html import render_html

    text = {"json": render_json, "csv": render_csv, "html": render_html}[fmt](result)
    if target is None:
        click.echo(text, nl=False)
    else:
        Path(target).write_text(text, encoding="utf-8")
        click.echo(f"wrote the {fmt} report to {target}")


def _print_table(result: CostReport, *, exact: bool, target: str | None) -> None:
    """The rich table on stdout, or as plain text into ``target``; where the table is wider than the output
    (a terminal, or ``COLUMNS``), the same figures as one block per tenant instead."""
    from rich.console import Console
    from rich.measure import Measurement

    if target is not None:
        with Path(target).open("w", encoding="utf-8") as file:
            Console(file=file, width=PIPE_WIDTH, color_system=None).print(render_table(result, exact=exact))
        click.echo(f"wrote the table report to {target}")
        return
    console = Console(file=sys.stdout)
    if not console.is_terminal:
        console = Console(file=sys.stdout, width=_columns() or PIPE_WIDTH, color_system=None)
    table = render_table(result, exact=exact)
    if Measurement.get(console, console.options.update(max_width=UNBOUNDED), table).maximum > console.width:
        console.print(render_cards(result, exact=exact))
    else:
        console.print(table)


def _columns() -> int | None:
    """The width ``COLUMNS`` asks for, if it is set to a number."""
    value = os.environ.get("COLUMNS", "")
    return int(value) if value.isdigit() and int(value) > 0 else None


COMMANDS = [report]
