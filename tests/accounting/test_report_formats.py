"""Cost report formats: JSON, CSV, the rich table, the HTML page (also in headless Chromium), and the CLI."""

from __future__ import annotations

import asyncio
import csv
import importlib.util
import io
import json
import re
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from types import ModuleType

import pytest
from rich.console import Console

import tests.support.report_data as report_data
from blobstore import BlobStore
from blobstore.accounting.pricing import price_list
from blobstore.accounting.report import CostReport
from blobstore.accounting.report_formats import CSV_COLUMNS, render_csv, render_json, render_table
from blobstore.accounting.report_html import render_html
from tests.support.cli_helpers import Run, invoke
from tests.support.stores import FakeClock, StoreFactory

PRICES = price_list(price_per_gb_month="10000000", egress_price_per_gb="20000000")
CHECK_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "check_html_report.py"


@pytest.fixture
async def built(open_store: StoreFactory, clock: FakeClock) -> BlobStore:
    """report_data's data set in an embedded (SQLite + local directory) store, the clock on April 1."""
    store = await open_store("sqlite-local")
    await report_data.build(store, clock)
    return store


@pytest.fixture
async def report(built: BlobStore) -> CostReport:
    """The data set's report at $10^7 per GB-month and $2 x 10^7 per GB of egress (costs in dollars and cents)."""
    return await built.report(pricing=PRICES)


def _expected_rows() -> dict[str, dict[str, object]]:
    rows = {}
    for tenant, (objects, logical, unique, shared, attributed) in report_data.FIGURES.items():
        egress = report_data.EGRESS_APRIL[tenant]
        storage = Decimal(attributed) / 100  # $10^7 per 10^9 bytes
        rows[tenant] = {
            "objects": objects,
            "logical_bytes": logical,
            "unique_bytes": unique,
            "shared_bytes": shared,
            "attributed_bytes": attributed,
            "bytes_saved": logical - attributed,
            "compressed_bytes": attributed,  # blobs under 4 KiB are stored raw
            "compression_saved_bytes": 0,
            "egress_bytes": egress,
            "storage_cost": storage,
            "egress_cost": Decimal(egress) / 50,
            "total_cost": storage + Decimal(egress) / 50,
        }
    return rows


def test_json_carries_every_figure(report: CostReport) -> None:
    """The JSON parses, and every tenant figure and cost (exact decimal strings) and the total are as computed."""
    data = json.loads(render_json(report))
    for row in data["tenants"]:
        expected = _expected_rows()[row["tenant"]]
        assert {name: _typed(row[name], expected[name]) for name in expected} == expected, row["tenant"]
    assert {name: data["total"][name] for name in report_data.TOTAL} == report_data.TOTAL
    assert Decimal(data["total"]["pending_gc_cost"]) == Decimal("6.20")
    assert Decimal(data["total"]["total_cost"]) == Decimal("48.81")


def test_csv_has_a_row_per_tenant_and_the_total(report: CostReport) -> None:
    """The CSV parses with the declared header, one row per tenant with every figure, then the store total."""
    rows = list(csv.DictReader(io.StringIO(render_csv(report))))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [(row["row"], row["tenant"]) for row in rows] == [
        ("tenant", "acme"),
        ("tenant", "globex"),
        ("tenant", "hooli"),
        ("tenant", "initech"),
        ("total", ""),
    ]
    for row in rows[:-1]:
        expected = _expected_rows()[row["tenant"]]
        assert {name: _typed(row[name], expected[name]) for name in expected} == expected
        assert row["pending_gc_bytes"] == ""
    total = rows[-1]
    assert {name: int(total[name]) for name in report_data.TOTAL} == report_data.TOTAL
    assert (Decimal(total["storage_cost"]), Decimal(total["total_cost"])) == (Decimal("15.61"), Decimal("48.81"))
    assert rows[1]["dedup_ratio"] == str(round(612 / 210, 4))
    assert rows[2]["dedup_ratio"] == ""


def test_table_shows_every_figure(report: CostReport) -> None:
    """The rich table (exact bytes) shows each tenant's figures and costs, the total, prices and pending GC."""
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(render_table(report, exact=True))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    lines = {line.split()[0]: line.split() for line in text.splitlines() if line.strip()}
    for tenant, expected in _expected_rows().items():
        cells = lines[tenant]
        assert cells[1:8] == [
            f"{expected[name]:,}"
            for name in (
                "objects",
                "logical_bytes",
                "unique_bytes",
                "shared_bytes",
                "attributed_bytes",
                "bytes_saved",
            )
        ] + [cells[7]]
        # Blobs under 4 KiB are stored raw: compressed bytes are the attributed ones, nothing saved, 1.00x.
        assert cells[8:11] == [f"{expected['attributed_bytes']:,}", "0", "1.00x" if expected["objects"] else "-"]
        assert cells[11] == f"{expected['egress_bytes']:,}"
        assert cells[12:] == [f"${expected[name]:,.2f}" for name in ("storage_cost", "egress_cost", "total_cost")]
    assert lines["acme"][7] == "2.51x"
    total = lines["all"]
    assert total[3:] == [
        "8",
        "4,163",
        "260",
        "1,301",
        "1,561",
        "2,602",
        "2.67x",
        "1,561",
        "0",
        "1.00x",
        "1,350",
        "$15.61",
        "$27.00",
        "$48.81",
    ]
    assert "pending GC 620 bytes in 4 blobs, 620 bytes compressed ($6.20/month" in text
    assert "custom: $10000000 per GB-month, egress $20000000 per GB (GB = 1,000,000,000 bytes)" in text


def test_html_is_one_self_contained_page_with_every_figure(report: CostReport) -> None:
    """The HTML has the figures (people's sizes and exact bytes), the chart, and nothing fetched from anywhere."""
    page = render_html(report)
    assert page.startswith("<!DOCTYPE html>")
    assert page.rstrip().endswith("</html>")
    for tenant, expected in _expected_rows().items():
        assert f"<td>{tenant}</td>" in page
        for name in ("logical_bytes", "unique_bytes", "shared_bytes", "attributed_bytes", "bytes_saved"):
            assert f"{expected[name]:,} B</small>" in page, (tenant, name)
        assert f"${expected['total_cost']:,.2f}" in page
    for figure in ("4,163 B", "1,561 B", "2,602 B", "620 B", "2,181 B", "$15.61", "$6.20", "$48.81"):
        assert figure in page, figure
    assert "<svg" in page
    assert page.count("<rect") >= 3 * 4
    assert re.search(r"(src|href)\s*=\s*[\"']?\s*(https?:)?//", page, re.IGNORECASE) is None
    assert "<script" not in page.lower()
    assert "<link" not in page.lower()
    assert "url(" not in page
    assert "@import" not in page
    assert "<img" not in page.lower()


def test_html_escapes_everything_from_the_data(report: CostReport) -> None:
    """A tenant or price list name with markup in it comes out escaped, in the table and in the chart."""
    evil = '<script>alert("x")</script>&'
    row = replace(report.tenants[0], tenant=evil)
    page = render_html(replace(report, tenants=[row], pricing=replace(report.pricing, name=evil)))
    assert evil not in page
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;" in page


def test_html_report_renders_in_headless_chromium(report: CostReport, tmp_path: Path, chromium: str) -> None:
    """Chromium renders the page to a 1200x900 PNG that is not blank and shows all three bar colours."""
    checker = _load_check_script()
    html = tmp_path / "report.html"
    html.write_text(render_html(report), encoding="utf-8")
    png = tmp_path / "report.png"
    checker.screenshot(chromium, html, png)
    assert png.stat().st_size > 20_000
    assert checker.check_png(png) == []


def test_png_check_rejects_a_blank_page(tmp_path: Path) -> None:
    """The screenshot check itself fails a flat page (so the Chromium test could fail)."""
    checker = _load_check_script()
    png = tmp_path / "blank.png"
    png.write_bytes(_flat_png(checker.WIDTH, checker.HEIGHT))
    problems = checker.check_png(png)
    assert any("blank" in problem for problem in problems)
    assert any("chart did not draw" in problem for problem in problems)


async def test_cli_report_in_every_format(built: BlobStore, tmp_path: Path) -> None:
    """`blobstore report` prints the same figures as JSON, CSV, a table and an HTML file, with the given pricing."""
    home = built.settings.home
    since = ["--since", "2026-03-01", "--price-per-gb-month", "10000000"]
    data = json.loads((await _invoke(["report", "--format", "json", *since], home=home)).ok().stdout)
    assert data["since"] == "2026-03-01"
    assert data["pricing"]["name"] == "custom"
    got = {row["tenant"]: (row["objects"], row["attributed_bytes"], row["egress_bytes"]) for row in data["tenants"]}
    assert got == {
        tenant: (figures[0], figures[4], report_data.EGRESS_SINCE_MARCH[tenant])
        for tenant, figures in report_data.FIGURES.items()
    }
    again = json.loads((await _invoke(["report", "--json", *since], home=home)).ok().stdout)
    assert again == data | {"generated_at": again["generated_at"]}
    rows = list(
        csv.DictReader(io.StringIO((await _invoke(["report", "--format", "csv", *since], home=home)).ok().stdout))
    )
    assert [row["attributed_bytes"] for row in rows] == ["1018", "210", "0", "333", "1561"]
    table = (await _invoke(["report", "--bytes", "--tenant", "acme", "--pricing", "wasabi"], home=home)).ok().stdout
    assert re.search(r"acme\s+4\s+2,551\s+250\s+1,301\s+1,018\s+1,533\s+2\.51x", table)
    assert "wasabi: $0.0059 per GB-month, egress $0 per GB" in table
    html = tmp_path / "r.html"
    (await _invoke(["report", "--format", "html", "-o", str(html)], home=home)).ok()
    assert "1,018 B</small>" in html.read_text()


async def test_cli_report_rejects_bad_options(built: BlobStore) -> None:
    """Conflicting or invalid options fail with one line on stderr and a non-zero exit."""
    home = built.settings.home
    (await _invoke(["report", "--pricing", "aws"], home=home)).failed("'aws' is not one of", code=2)
    (await _invoke(["report", "--pricing", "wasabi", "--price-per-gb-month", "1"], home=home)).failed(
        "not both", code=2
    )
    (await _invoke(["report", "--json", "--format", "csv"], home=home)).failed("conflicts", code=2)
    (await _invoke(["report", "--price-per-gb-month", "-3"], home=home)).failed("expected a finite number >= 0")
    (await _invoke(["report", "--since", "yesterday"], home=home)).failed("--since", code=2)
    (await _invoke(["report", "--tenant", "Bad Name"], home=home)).failed("invalid tenant", code=1)


async def _invoke(args: list[str], *, home: Path) -> Run:
    """``blobstore ARGS`` in-process, in a thread: the command runs its own event loop."""
    return await asyncio.to_thread(invoke, args, home=home)


def _typed(text: object, like: object) -> object:
    """A JSON or CSV value as the type of ``like`` (money is a decimal string, bytes an integer)."""
    if isinstance(like, Decimal):
        return Decimal(str(text))
    return int(str(text))


def _load_check_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_html_report", CHECK_SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _flat_png(width: int, height: int) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    raw = b"".join(b"\x00" + b"\xff" * (3 * width) for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def test_every_format_shows_compressed_bytes_and_both_savings(report: CostReport) -> None:
    """A tenant whose 1,018 attributed bytes take 400 on storage: compressed bytes, compression's saving and
    ratio beside dedup's in JSON, CSV, the table and the HTML page."""
    acme = replace(report.tenants[0], compressed_bytes=400)
    squeezed = replace(report, tenants=[acme])
    data = json.loads(render_json(squeezed))["tenants"][0]
    assert (data["compressed_bytes"], data["compression_saved_bytes"], data["compression_ratio"]) == (
        400,
        618,
        round(1018 / 400, 4),
    )
    assert (data["bytes_saved"], data["dedup_ratio"]) == (2551 - 1018, round(2551 / 1018, 4))
    row = next(csv.DictReader(io.StringIO(render_csv(squeezed))))
    assert (row["compressed_bytes"], row["compression_saved_bytes"], row["compression_ratio"]) == (
        "400",
        "618",
        str(round(1018 / 400, 4)),
    )
    console = Console(file=io.StringIO(), width=250, color_system=None)
    console.print(render_table(squeezed, exact=True))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    cells = next(line.split() for line in text.splitlines() if line.strip().startswith("acme"))
    assert cells[5:11] == ["1,018", "1,533", "2.51x", "400", "618", f"{1018 / 400:.2f}x"]
    header = next(line for line in text.splitlines() if "tenant" in line and "logical" in line)
    assert header.index("dedup saved") < header.index("compressed") < header.index("zstd saved")
    page = render_html(squeezed)
    assert "<td>400 B" in page or "400 B</small>" in page
    assert "618 B</small>" in page
    assert "zstd saved" in page
