"""A cost report as one self-contained HTML page: inline CSS and SVG, no scripts, no external assets.

The page opens offline in any browser and prints well: summary cards, a bar
chart of logical vs attributed bytes and the cost of each tenant, the full
table (people's sizes with exact byte counts beneath), and what each figure
means. Everything taken from the data is escaped with :func:`html.escape`.
"""

from __future__ import annotations

from html import escape

from blobstore.accounting.pricing import GB
from blobstore.accounting.report import CostReport, Figures
from blobstore.accounting.report_formats import (
    FIGURE_NAMES,
    money_text,
    price_text,
    ratio_text,
    size_text,
    window_text,
)

#: Tenants drawn in the chart (the largest by logical bytes); the table lists all of them.
CHART_TENANTS = 25

_STYLE = """
:root { --ink: #1f2933; --muted: #616e7c; --line: #e4e7eb; --logical: #9fb3c8; --attributed: #2f6fb0;
        --cost: #d9822b; --card: #f5f7fa; }
* { box-sizing: border-box; }
body { margin: 0; padding: 32px 40px; font: 14px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue",
       Arial, sans-serif; color: var(--ink); background: #fff; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 32px 0 12px; }
.meta { color: var(--muted); margin: 0; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin-top: 20px; }
.card { background: var(--card); border-radius: 8px; padding: 12px 14px; flex: 1 1 130px; }
.card .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.card .value { font-size: 20px; font-weight: 600; white-space: nowrap; }
.card .note { color: var(--muted); font-size: 12px; }
svg { display: block; max-width: 100%; height: auto; }
svg text { font: 12px -apple-system, "Segoe UI", Roboto, Arial, sans-serif; fill: var(--ink); }
svg .muted { fill: var(--muted); }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { padding: 6px 10px; border-bottom: 1px solid var(--line); text-align: right; vertical-align: top;
         white-space: nowrap; }
th { font-size: 12px; color: var(--muted); font-weight: 600; border-bottom: 2px solid var(--line); }
th:first-child, td:first-child { text-align: left; }
tfoot td { font-weight: 600; border-top: 2px solid var(--ink); }
td small { display: block; color: var(--muted); font-size: 11px; font-weight: 400; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; color: var(--muted); }
dt { font-weight: 600; color: var(--ink); }
dd { margin: 0; }
"""


def render_html(report: CostReport) -> str:
    """The report as a complete HTML document."""
    title = "Storage cost report" + (f" for tenant {report.tenant}" if report.tenant else "")
    generated = report.generated_at.strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title>",
        f"<style>{_STYLE}</style>",
        "</head>",
        "<body>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="meta">Generated {escape(generated)} &middot; prices {escape(price_text(report.pricing))}'
        f" &middot; {escape(window_text(report))}</p>",
        _cards(report),
        "<h2>Logical vs attributed bytes, and monthly cost, per tenant</h2>",
        _chart(report),
        "<h2>Tenants</h2>",
        _table(report),
        "<h2>What the figures mean</h2>",
        _definitions(),
        "</body>",
        "</html>",
    ]
    return "\n".join(parts) + "\n"


def _cards(report: CostReport) -> str:
    total = report.total
    currency = report.pricing.currency
    since = _unbroken(report.since.isoformat())
    cards = [
        ("Physical", size_text(total.physical_bytes), f"{total.blobs:,} blob{'' if total.blobs == 1 else 's'}"),
        ("Logical", size_text(total.logical_bytes), f"{total.objects:,} objects"),
        ("Saved by dedup", size_text(total.bytes_saved), f"dedup ratio {ratio_text(total.dedup_ratio)}"),
        ("Compressed", size_text(total.compressed_bytes), "on storage, what storage costs"),
        (
            "Saved by compression",
            size_text(total.compression_saved_bytes),
            f"compression ratio {ratio_text(total.compression_ratio)}",
        ),
        ("Storage / month", money_text(total.storage_cost, currency), "attributed to tenants"),
        (
            "Pending GC",
            size_text(total.pending_gc_compressed_bytes),
            f"{money_text(total.pending_gc_cost, currency)} per month",
        ),
        ("Egress", size_text(total.egress_bytes), f"{money_text(total.egress_cost, currency)} since {since}"),
        ("Total", money_text(total.total_cost, currency), "storage, pending GC and egress"),
    ]
    items = "".join(
        f'<div class="card"><div class="label">{escape(label)}</div><div class="value">{escape(value)}</div>'
        f'<div class="note">{escape(note)}</div></div>'
        for label, value, note in cards
    )
    return f'<div class="cards">{items}</div>'


def _chart(report: CostReport) -> str:
    """Horizontal bars: per tenant, logical (light) over attributed (dark) bytes, and total cost beside."""
    shown = sorted(report.tenants, key=lambda row: (-row.logical_bytes, row.tenant))[:CHART_TENANTS]
    if not shown:
        return '<p class="meta">No tenants yet.</p>'
    label_w, bytes_w, gap, cost_w, value_w = 160, 460, 40, 240, 90
    row_h, top = 44, 34
    width = label_w + bytes_w + value_w + gap + cost_w + value_w
    height = top + row_h * len(shown) + 8
    max_bytes = max(max(row.logical_bytes, row.attributed_bytes) for row in shown) or 1
    max_cost = max(row.total_cost for row in shown) or 1
    cost_x = label_w + bytes_w + value_w + gap
    currency = report.pricing.currency
    out = [
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}"'
        ' role="img" aria-label="Logical and attributed bytes and cost per tenant">',
        _legend(label_w, cost_x),
    ]
    for index, row in enumerate(shown):
        y = top + index * row_h
        logical_w = bytes_w * row.logical_bytes / max_bytes
        attributed_w = bytes_w * row.attributed_bytes / max_bytes
        cost_bar = float(cost_w * row.total_cost / max_cost)
        out += [
            f'<text x="{label_w - 10}" y="{y + 20}" text-anchor="end">{escape(_clip(row.tenant))}</text>',
            _bar(label_w, y + 4, logical_w, 14, "var(--logical)", f"{row.tenant}: logical {row.logical_bytes:,} B"),
            _bar(
                label_w,
                y + 20,
                attributed_w,
                14,
                "var(--attributed)",
                f"{row.tenant}: attributed {row.attributed_bytes:,} B",
            ),
            f'<text x="{label_w + logical_w + 6:.1f}" y="{y + 15}" class="muted">'
            f"{escape(size_text(row.logical_bytes))}</text>",
            f'<text x="{label_w + attributed_w + 6:.1f}" y="{y + 31}">{escape(size_text(row.attributed_bytes))}</text>',
            _bar(cost_x, y + 10, cost_bar, 18, "var(--cost)", f"{row.tenant}: {money_text(row.total_cost, currency)}"),
            f'<text x="{cost_x + cost_bar + 6:.1f}" y="{y + 24}">{escape(money_text(row.total_cost, currency))}</text>',
        ]
    out.append("</svg>")
    if len(report.tenants) > len(shown):
        out.append(f'<p class="meta">The {len(shown)} largest of {len(report.tenants):,} tenants by logical bytes.</p>')
    return "\n".join(out)


def _legend(x: int, cost_x: int) -> str:
    items = [(x, "var(--logical)", "logical bytes"), (x + 130, "var(--attributed)", "attributed bytes")]
    items.append((cost_x, "var(--cost)", "total cost (storage/month + egress)"))
    return "".join(
        f'<rect x="{left}" y="6" width="12" height="12" rx="2" fill="{fill}"/>'
        f'<text x="{left + 18}" y="16" class="muted">{escape(text)}</text>'
        for left, fill, text in items
    )


def _bar(x: float, y: float, width: float, height: float, fill: str, title: str) -> str:
    shown = max(width, 1.5) if width > 0 else 0
    return (
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{shown:.1f}" height="{height}" rx="2" fill="{fill}">'
        f"<title>{escape(title)}</title></rect>"
    )


def _unbroken(text: str) -> str:
    """``text`` with non-breaking hyphens, so a date never wraps across lines."""
    return text.replace("-", "\u2011")


def _clip(name: str, limit: int = 22) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "\u2026"


_HEADERS = ("tenant", *FIGURE_NAMES)


def _table(report: CostReport) -> str:
    currency = report.pricing.currency

    def sized(nbytes: int) -> str:
        return f"<td>{escape(size_text(nbytes))}<small>{nbytes:,} B</small></td>"

    def cells(name: str, row: Figures) -> str:
        return "".join(
            [
                f"<td>{escape(name)}</td>",
                f"<td>{row.objects:,}</td>",
                sized(row.logical_bytes),
                sized(row.unique_bytes),
                sized(row.shared_bytes),
                sized(row.attributed_bytes),
                sized(row.bytes_saved),
                f"<td>{escape(ratio_text(row.dedup_ratio))}</td>",
                sized(row.compressed_bytes),
                sized(row.compression_saved_bytes),
                f"<td>{escape(ratio_text(row.compression_ratio))}</td>",
                sized(row.egress_bytes),
                *(
                    f"<td>{escape(money_text(value, currency))}</td>"
                    for value in (row.storage_cost, row.egress_cost, row.total_cost)
                ),
            ]
        )

    head = "".join(f"<th>{escape(header)}</th>" for header in _HEADERS)
    body = "".join(f"<tr>{cells(row.tenant, row)}</tr>" for row in report.tenants)
    total = report.total
    foot = f"<tr>{cells(f'All {total.tenants:,} tenants', total)}</tr>"
    pending = (
        f'<p class="meta">Not attributed to any tenant: {total.pending_gc_blobs:,} blobs pending GC, '
        f"{escape(size_text(total.pending_gc_bytes))} ({total.pending_gc_bytes:,} B), "
        f"{escape(size_text(total.pending_gc_compressed_bytes))} ({total.pending_gc_compressed_bytes:,} B) "
        f"compressed, {escape(money_text(total.pending_gc_cost, currency))} per month, included in the total "
        f"({escape(money_text(total.total_cost, currency))}). Storage holds "
        f"{escape(size_text(total.stored_bytes))} ({total.stored_bytes:,} B) in all, "
        f"{escape(size_text(total.compressed_stored_bytes))} ({total.compressed_stored_bytes:,} B) compressed.</p>"
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody><tfoot>{foot}</tfoot></table>" + pending


def _definitions() -> str:
    terms = [
        ("objects", "the tenant's keys (references)"),
        ("logical", "the sum of the sizes of the tenant's keys: what it would store without dedup"),
        ("unique", "bytes of the blobs only this tenant references, each blob once"),
        ("shared", "bytes of the blobs this tenant and at least one other reference, each blob once"),
        (
            "attributed",
            "the tenant's share of the physical bytes: a blob of S bytes held by n references gives S div n "
            "to each; the S mod n bytes left go to the holder that became a tenant first, so the tenants' "
            "attributed bytes add up exactly to the physical bytes",
        ),
        ("dedup saved, dedup", "logical minus attributed, and logical divided by attributed"),
        (
            "compressed",
            "the bytes the tenant's blobs take on storage, compressed (a blob kept raw counts its size), "
            "attributed by the same rule as attributed bytes",
        ),
        ("zstd saved, zstd", "attributed minus compressed, and attributed divided by compressed"),
        ("egress", "bytes read through get and open in the window, as streamed"),
        ("storage/month", f"compressed bytes times the price per GB-month (GB = {GB:,} bytes)"),
        ("pending GC", "unreferenced, tombstoned and abandoned blobs that GC has not yet reclaimed"),
    ]
    items = "".join(f"<dt>{escape(term)}</dt><dd>{escape(text)}</dd>" for term, text in terms)
    return f"<dl>{items}</dl>"
