"""Cost reports rendered for people (a rich table) and for scripts (JSON, CSV); HTML is in report_html.

Every renderer takes a :class:`~blobstore.accounting.report.CostReport` and changes nothing.
JSON is ``CostReport.to_dict()``; CSV has one row per tenant and a last
``total`` row, with the same column names as the JSON; money is exact decimal
text in both.
"""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from rich.filesize import decimal as human_size

from blobstore.accounting.pricing import GB, PriceList, decimal_text
from blobstore.model.wording import counted

if TYPE_CHECKING:  # light to import (the CLI reads FORMATS for --help); rich tables load when one is drawn
    from rich.console import Group
    from rich.table import Table

    from blobstore.accounting.report import CostReport, Figures

#: The formats ``blobstore report --format`` offers.
FORMATS = ("table", "json", "csv", "html")

#: CSV columns, in order; a tenant row leaves the store-only ones empty.
CSV_COLUMNS = (
    "row",
    "tenant",
    "objects",
    "logical_bytes",
    "unique_bytes",
    "shared_bytes",
    "attributed_bytes",
    "bytes_saved",
    "dedup_ratio",
    "compressed_bytes",
    "compression_saved_bytes",
    "compression_ratio",
    "egress_bytes",
    "storage_cost",
    "egress_cost",
    "total_cost",
    "tenants",
    "blobs",
    "physical_bytes",
    "pending_gc_blobs",
    "pending_gc_bytes",
    "pending_gc_compressed_bytes",
    "pending_gc_cost",
    "stored_bytes",
    "compressed_stored_bytes",
)


def render_json(report: CostReport) -> str:
    """The report as indented JSON."""
    return json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n"


def render_csv(report: CostReport) -> str:
    """The report as CSV: a header, one row per tenant, then the store's ``total`` row."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, CSV_COLUMNS, restval="", extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in report.tenants:
        writer.writerow({"row": "tenant", **_csv_values(row.to_dict())})
    writer.writerow({"row": "total", **_csv_values(report.total.to_dict()), "tenant": ""})
    return buffer.getvalue()


def _csv_values(values: dict[str, Any]) -> dict[str, Any]:
    return {name: "" if value is None else value for name, value in values.items()}


def size_text(nbytes: int, *, exact: bool = False) -> str:
    """Bytes for people: ``2.6 kB`` (GB = 10^9 bytes), or ``2,551`` with ``exact``."""
    return f"{nbytes:,}" if exact else human_size(nbytes)


def ratio_text(ratio: float | None) -> str:
    """A dedup or compression ratio for people: ``2.51x``, or ``-`` when nothing is stored."""
    return "-" if ratio is None else f"{ratio:.2f}x"


def money_text(amount: Decimal, currency: str = "USD") -> str:
    """Money for people: cents from one cent up (``$1,234.57``), three significant digits below (``$0.0000234``)."""
    if amount == 0:
        digits = "0.00"
    elif abs(amount) >= Decimal("0.01"):
        digits = f"{amount.quantize(Decimal('0.01')):,}"
    else:
        digits = format(amount.quantize(Decimal(1).scaleb(amount.adjusted() - 2)), "f")
    return f"${digits}" if currency == "USD" else f"{digits} {currency}"


def price_text(prices: PriceList) -> str:
    """``aws-s3-standard: $0.023 per GB-month, egress $0.09 per GB (GB = 10^9 bytes)``."""
    return (
        f"{prices.name}: {unit_price_text(prices.storage_per_gb_month, prices.currency)} per GB-month, "
        f"egress {unit_price_text(prices.egress_per_gb, prices.currency)} per GB (GB = {GB:,} bytes)"
    )


def unit_price_text(price: Decimal, currency: str) -> str:
    """A price with every digit: ``$0.0125``, ``0.01 EUR``."""
    return f"${decimal_text(price)}" if currency == "USD" else f"{decimal_text(price)} {currency}"


def window_text(report: CostReport) -> str:
    """``egress from 2026-04-01 to 2026-04-30``."""
    return f"egress from {report.since.isoformat()} to {report.until.isoformat()}"


#: The figures of a row, as the table's column headers, in order (short: the table fits 200 columns).
#: "dedup saved", "dedup" and "zstd saved", "zstd" are the bytes saved and the ratio of dedup and of compression.
FIGURE_NAMES = (
    "objects",
    "logical",
    "unique",
    "shared",
    "attributed",
    "dedup saved",
    "dedup",
    "compressed",
    "zstd saved",
    "zstd",
    "egress",
    "storage/month",
    "egress cost",
    "total",
)


def render_table(report: CostReport, *, exact: bool = False) -> Table:
    """A rich table: one row per tenant, the store total, and a caption with prices and pending GC."""
    from rich import box
    from rich.table import Table

    table = Table(
        title=_title(report), caption=_caption(report, exact=exact), caption_justify="left", box=box.SIMPLE_HEAD
    )
    table.add_column("tenant", no_wrap=True)
    for name in FIGURE_NAMES:
        table.add_column(name, justify="right", no_wrap=True)
    for row in report.tenants:
        table.add_row(row.tenant, *_figures(row, report, exact=exact))
    table.add_section()
    table.add_row(_total_name(report), *_figures(report.total, report, exact=exact), style="bold")
    return table


def render_cards(report: CostReport, *, exact: bool = False) -> Group:
    """The table's content for a narrow terminal: one block of ``figure  value`` lines per tenant and for the
    total, each figure on its own line, then the caption."""
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    cards: list[Table | Text] = [Text(_title(report), style="bold")]
    for name, row in _rows(report):
        card = Table(
            title=name, title_justify="left", title_style="bold", box=box.SIMPLE, show_header=False, pad_edge=False
        )
        card.add_column("figure", no_wrap=True)
        card.add_column("value", justify="right", no_wrap=True)
        for figure, value in zip(FIGURE_NAMES, _figures(row, report, exact=exact), strict=True):
            card.add_row(figure, value)
        cards.append(card)
    cards.append(Text(_caption(report, exact=exact)))
    return Group(*cards)


def _title(report: CostReport) -> str:
    return "Storage cost report" + (f" for tenant {report.tenant}" if report.tenant else "")


def _rows(report: CostReport) -> list[tuple[str, Figures]]:
    """(name, figures) of each tenant, then of the total."""
    return [(row.tenant, row) for row in report.tenants] + [(_total_name(report), report.total)]


def _total_name(report: CostReport) -> str:
    return f"all {counted(report.total.tenants, 'tenant')}"


def _figures(row: Figures, report: CostReport, *, exact: bool) -> list[str]:
    """The row's figures as text, in the order of :data:`FIGURE_NAMES`."""
    currency = report.pricing.currency
    sizes = (row.logical_bytes, row.unique_bytes, row.shared_bytes, row.attributed_bytes, row.bytes_saved)
    return [
        f"{row.objects:,}",
        *(size_text(value, exact=exact) for value in sizes),
        ratio_text(row.dedup_ratio),
        size_text(row.compressed_bytes, exact=exact),
        size_text(row.compression_saved_bytes, exact=exact),
        ratio_text(row.compression_ratio),
        size_text(row.egress_bytes, exact=exact),
        money_text(row.storage_cost, currency),
        money_text(row.egress_cost, currency),
        money_text(row.total_cost, currency),
    ]


def _caption(report: CostReport, *, exact: bool) -> str:
    total = report.total

    def sized(nbytes: int) -> str:
        return f"{nbytes:,} bytes" if exact else size_text(nbytes)

    lines = [
        f"Prices {price_text(report.pricing)}; {window_text(report)}.",
        f"Physical {sized(total.physical_bytes)} in {counted(total.blobs, 'blob')}, "
        f"{sized(total.compressed_bytes)} compressed; "
        f"pending GC {sized(total.pending_gc_bytes)} in {counted(total.pending_gc_blobs, 'blob')}, "
        f"{sized(total.pending_gc_compressed_bytes)} compressed "
        f"({money_text(total.pending_gc_cost, report.pricing.currency)}/month, included in the total).",
        "Attributed: each blob's size split evenly over its references; "
        "the remainder bytes go to the holder that became a tenant first.",
        "Compressed: the bytes on storage, attributed the same way; storage is priced on them.",
    ]
    if set(total.class_bytes) - {"STANDARD"}:
        by_class = ", ".join(
            f"{name} {sized(nbytes)} at {unit_price_text(report.pricing.storage_price(name), report.pricing.currency)}"
            for name, nbytes in sorted(total.class_bytes.items())
        )
        lines.append(f"By storage class (compressed, per GB-month): {by_class}.")
    return "\n".join(lines)
