"""A dry run rendered for people (rich tables, or one HTML page in the cost report's style) and scripts (JSON)."""

from __future__ import annotations

import json
from html import escape
from typing import TYPE_CHECKING

from blobstore.accounting.report_formats import money_text, price_text, ratio_text, size_text

if TYPE_CHECKING:  # light to import (the CLI reads FORMATS for --help); rich and the report load when used
    from rich.console import RenderableType

    from blobstore.transfer.dryrun import DryRun

#: The formats ``blobstore import --dry-run --format`` offers.
FORMATS = ("table", "json", "html")

DIGEST_SHOWN = 16


def render_json(report: DryRun) -> str:
    """The dry run as indented JSON (``DryRun.to_dict()``)."""
    return json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n"


def _figures(report: DryRun) -> list[tuple[str, str, str]]:
    """(figure, value, what it means) rows shared by the table and the page."""
    currency = report.pricing.currency
    scope = "every tenant's blobs" if report.dedup_scope == "global" else f"tenant {report.tenant}'s blobs"
    return [
        ("files", f"{report.files:,}", f"{report.excluded:,} left out by --include/--exclude"),
        ("logical", size_text(report.logical_bytes), "the files' sizes added up"),
        ("unique in source", size_text(report.unique_bytes), f"after dedup within the source ({_ratio(report)})"),
        ("already in store", size_text(report.held_bytes), f"of those, held by {scope}"),
        ("would be stored", size_text(report.new_bytes), "new bytes the import adds to storage"),
        ("saved", size_text(report.saved_bytes), "logical minus stored"),
        (
            "compressed (estimate)",
            size_text(report.estimated_stored_bytes),
            f"what would be stored takes as frames, estimated from {_files(report.compression_sample.files)} sampled",
        ),
        ("already imported", f"{report.already_imported:,}", "files whose key already holds them (skipped)"),
        ("cost before", money_text(report.cost_before, currency) + "/month", "the logical bytes, stored in full"),
        ("cost after", money_text(report.cost_after, currency) + "/month", "the bytes the store adds"),
    ]


def _files(count: int) -> str:
    return f"{count:,} file" + ("" if count == 1 else "s")


def _ratio(report: DryRun) -> str:
    return f"dedup ratio {ratio_text(report.dedup_ratio)}"


def _title(report: DryRun) -> str:
    return f"Dry run: import {report.source} into {report.tenant}" + (
        f" under {report.prefix!r}" if report.prefix else ""
    )


def render_table(report: DryRun) -> RenderableType:
    """The figures, the largest duplicate groups and the failures, as rich tables."""
    from rich import box
    from rich.console import Group
    from rich.table import Table

    figures = Table(
        title=_title(report),
        caption=f"Prices {price_text(report.pricing)}. Nothing was stored.",
        caption_justify="left",
        box=box.SIMPLE_HEAD,
    )
    figures.add_column("figure", no_wrap=True)
    figures.add_column("value", justify="right", no_wrap=True)
    figures.add_column("meaning")
    for row in _figures(report):
        figures.add_row(*row)
    parts: list[RenderableType] = [figures]
    if report.duplicate_groups:
        groups = Table(title="Largest duplicate groups", box=box.SIMPLE_HEAD, title_justify="left")
        for header in ("copies", "size", "saved"):
            groups.add_column(header, justify="right", no_wrap=True)
        groups.add_column("digest", no_wrap=True)
        groups.add_column("paths")
        for group in report.duplicate_groups:
            more = group.count - len(group.paths)
            groups.add_row(
                f"{group.count:,}",
                size_text(group.size),
                size_text(group.saved_bytes),
                group.digest[:DIGEST_SHOWN] + "…",
                "\n".join(group.paths) + (f"\n… and {more:,} more" if more else ""),
            )
        parts.append(groups)
    if report.failures:
        failures = Table(title=f"{_files(len(report.failures))} cannot be imported", box=box.SIMPLE_HEAD)
        failures.add_column("path")
        failures.add_column("reason")
        for failure in report.failures:
            failures.add_row(failure.path, failure.reason)
        parts.append(failures)
    return Group(*parts)


def render_html(report: DryRun) -> str:
    """The dry run as one self-contained HTML page (inline CSS, no scripts), in the cost report's style."""
    from blobstore.accounting.report_html import _STYLE as REPORT_STYLE

    title = _title(report)
    generated = report.generated_at.strftime("%Y-%m-%d %H:%M UTC")
    currency = report.pricing.currency
    cards = [
        ("Files", f"{report.files:,}", size_text(report.logical_bytes) + " logical"),
        ("Would be stored", size_text(report.new_bytes), f"{size_text(report.held_bytes)} already in the store"),
        ("Saved", size_text(report.saved_bytes), _ratio(report) + " within the source"),
        ("Cost before", money_text(report.cost_before, currency), "per month, every file in full"),
        ("Cost after", money_text(report.cost_after, currency), "per month, what the store adds"),
    ]
    card_html = "".join(
        f'<div class="card"><div class="label">{escape(label)}</div><div class="value">{escape(value)}</div>'
        f'<div class="note">{escape(note)}</div></div>'
        for label, value, note in cards
    )
    figure_rows = "".join(
        f"<tr><td>{escape(name)}</td><td>{escape(value)}</td><td>{escape(meaning)}</td></tr>"
        for name, value, meaning in _figures(report)
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title>",
        f"<style>{REPORT_STYLE}</style>",
        "</head>",
        "<body>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="meta">Generated {escape(generated)} &middot; prices {escape(price_text(report.pricing))}'
        " &middot; nothing was stored</p>",
        f'<div class="cards">{card_html}</div>',
        "<h2>Figures</h2>",
        f"<table><thead><tr><th>figure</th><th>value</th><th>meaning</th></tr></thead><tbody>{figure_rows}"
        "</tbody></table>",
        "<h2>Largest duplicate groups</h2>",
        _groups_html(report),
    ]
    if report.failures:
        rows = "".join(f"<tr><td>{escape(f.path)}</td><td>{escape(f.reason)}</td></tr>" for f in report.failures)
        parts += [
            f"<h2>{_files(len(report.failures))} cannot be imported</h2>",
            f"<table><thead><tr><th>path</th><th>reason</th></tr></thead><tbody>{rows}</tbody></table>",
        ]
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"


def _groups_html(report: DryRun) -> str:
    if not report.duplicate_groups:
        return '<p class="meta">No two files of the source have the same bytes.</p>'
    rows = "".join(
        f"<tr><td>{group.count:,}</td><td>{escape(size_text(group.size))}<small>{group.size:,} B</small></td>"
        f"<td>{escape(size_text(group.saved_bytes))}</td><td><code>{escape(group.digest[:DIGEST_SHOWN])}…</code></td>"
        f"<td>{'<br>'.join(escape(path) for path in group.paths)}</td></tr>"
        for group in report.duplicate_groups
    )
    head = "<tr><th>copies</th><th>size</th><th>saved</th><th>digest</th><th>paths</th></tr>"
    return f"<table><thead>{head}</thead><tbody>{rows}</tbody></table>"
