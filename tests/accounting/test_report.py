"""Cost reports: every figure on a hand-computed data set, pricing, egress windows, and their edge cases."""

from __future__ import annotations

import asyncio
import os
from datetime import date, timedelta
from decimal import Decimal

import pytest
import zstandard
from sqlalchemy import text as sqla_text

import tests.support.report_data as report_data
from blobstore import BlobStore, InvalidInput, InvalidTenant
from blobstore.accounting.pricing import PRESETS, PriceList, price_list
from blobstore.accounting.report import CostReport
from tests.support.stores import FakeClock

PRICES = price_list(price_per_gb_month="10000000", egress_price_per_gb="20000000")


@pytest.fixture
async def built(store: BlobStore, clock: FakeClock) -> BlobStore:
    """The store holding report_data's data set, with the clock on April 1."""
    await report_data.build(store, clock)
    return store


def _row(report: CostReport, tenant: str) -> dict[str, object]:
    return next(row.to_dict() for row in report.tenants if row.tenant == tenant)


async def test_every_tenant_figure_matches_the_hand_computed_data_set(built: BlobStore) -> None:
    """Objects, logical, unique, shared, attributed, saved and ratio per tenant are exactly as computed by hand."""
    report = await built.report(pricing=PRICES)
    assert [row.tenant for row in report.tenants] == ["acme", "globex", "hooli", "initech"]
    for row in report.tenants:
        objects, logical, unique, shared, attributed = report_data.FIGURES[row.tenant]
        assert (row.objects, row.logical_bytes, row.unique_bytes, row.shared_bytes, row.attributed_bytes) == (
            objects,
            logical,
            unique,
            shared,
            attributed,
        ), row.tenant
        assert row.bytes_saved == logical - attributed
        assert row.dedup_ratio == (logical / attributed if attributed else None)
    assert _row(report, "acme")["dedup_ratio"] == round(2551 / 1018, 4)


async def test_attributed_bytes_add_up_exactly_to_physical_bytes(built: BlobStore) -> None:
    """The tenants' attributed bytes sum to the referenced blobs' bytes; unique + shared totals do too."""
    total = (await built.report()).total
    assert sum(row[4] for row in report_data.FIGURES.values()) == total.physical_bytes == 1000 + 301 + 250 + 10
    assert total.unique_bytes + total.shared_bytes == total.physical_bytes


async def test_store_total_counts_pending_gc_but_not_uploads_in_flight(built: BlobStore) -> None:
    """The total has the tenants' sums, the blobs, and pending GC: unreferenced, tombstoned and abandoned blobs."""
    total = (await built.report(pricing=PRICES)).total.to_dict()
    assert {name: total[name] for name in report_data.TOTAL} == report_data.TOTAL


async def test_costs_are_exact_decimals_at_the_price_list(built: BlobStore) -> None:
    """Storage cost = attributed bytes x price per GB-month (GB = 10^9 bytes); egress likewise; sums are exact."""
    report = await built.report(pricing=PRICES)
    acme = next(row for row in report.tenants if row.tenant == "acme")
    assert acme.storage_cost == Decimal("10.18")  # 1018 bytes at $10^7 per GB-month
    assert acme.egress_cost == Decimal("7.00")  # 350 bytes at $2 x 10^7 per GB
    assert acme.total_cost == Decimal("17.18")
    total = report.total
    assert total.storage_cost == Decimal("15.61")
    assert total.pending_gc_cost == Decimal("6.20")
    assert total.egress_cost == Decimal("27.00")
    assert total.total_cost == Decimal("48.81")
    assert sum((row.storage_cost for row in report.tenants), Decimal(0)) == total.storage_cost
    assert all(isinstance(row.storage_cost, Decimal) for row in report.tenants)


async def test_presets_price_storage_and_egress(built: BlobStore) -> None:
    """Each preset's prices per GB are applied exactly: e.g. aws-s3-standard $0.023/GB-month and $0.09/GB out."""
    expected = {
        "aws-s3-standard": ("0.023", "0.09"),
        "aws-s3-standard-ia": ("0.0125", "0.09"),
        "aws-s3-glacier-ir": ("0.004", "0.09"),
        "cloudflare-r2": ("0.015", "0"),
        "backblaze-b2": ("0.006", "0.01"),
        "wasabi": ("0.0059", "0"),
    }
    assert set(PRESETS) == set(expected)
    for name, (storage, egress) in expected.items():
        initech = next(row for row in (await built.report(pricing=name)).tenants if row.tenant == "initech")
        assert initech.storage_cost == Decimal(333) * Decimal(storage) / 10**9, name
        assert initech.egress_cost == Decimal(1000) * Decimal(egress) / 10**9, name
    default = await built.report()
    assert default.pricing.name == "aws-s3-standard"


async def test_egress_counts_bytes_streamed_in_the_window(built: BlobStore) -> None:
    """Egress defaults to this month (by the store clock); --since widens it; ranged and unread opens count as read."""
    april = await built.report()
    assert (april.since, april.until) == (date(2026, 4, 1), report_data.TODAY)
    assert {row.tenant: row.egress_bytes for row in april.tenants} == report_data.EGRESS_APRIL
    since_march = await built.report(since=report_data.MARCH_1)
    assert {row.tenant: row.egress_bytes for row in since_march.tenants} == report_data.EGRESS_SINCE_MARCH
    assert since_march.total.egress_bytes == sum(report_data.EGRESS_SINCE_MARCH.values())


async def test_concurrent_reads_add_up_in_the_egress_table(store: BlobStore) -> None:
    """Many reads at once (several pooled connections) each add their bytes: none is lost to the upsert race."""
    tenant = store.tenant("reader")
    await tenant.put("k", b"x" * 1234)
    await asyncio.gather(*(tenant.get("k") for _ in range(20)))
    assert (await store.report(tenant="reader")).tenants[0].egress_bytes == 20 * 1234


async def test_a_failed_read_counts_the_bytes_it_streamed(store: BlobStore) -> None:
    """A read abandoned part-way records exactly the chunks handed to the caller."""
    tenant = store.tenant("reader")
    await tenant.put("k", b"y" * 10)

    async def give_up() -> None:
        async with tenant.open("k") as stream:
            async for _ in stream:
                raise RuntimeError("caller gave up")

    with pytest.raises(RuntimeError):
        await give_up()
    assert (await store.report(tenant="reader")).tenants[0].egress_bytes == 10


async def test_tenant_filter_selects_one_row_and_keeps_the_store_total(built: BlobStore) -> None:
    """--tenant T reports T alone; the total is still the whole store's; an unknown tenant is a row of zeros."""
    report = await built.report(tenant="globex", pricing=PRICES)
    assert [row.tenant for row in report.tenants] == ["globex"]
    assert report.total.physical_bytes == 1561
    nobody = await built.report(tenant="nobody")
    assert [(row.tenant, row.objects, row.attributed_bytes) for row in nobody.tenants] == [("nobody", 0, 0)]


async def test_empty_store_reports_zeros(store: BlobStore) -> None:
    """A store without tenants reports no rows, zero totals and no dedup ratio."""
    report = await store.report()
    assert report.tenants == []
    assert (report.total.objects, report.total.physical_bytes, report.total.dedup_ratio) == (0, 0, None)
    assert report.total.total_cost == 0


async def test_bad_report_arguments_are_rejected(store: BlobStore, clock: FakeClock) -> None:
    """Unknown presets, negative or non-numeric prices, bad tenants and future windows fail with a clear error."""
    with pytest.raises(InvalidInput, match="unknown pricing 'aws'"):
        await store.report(pricing="aws")
    with pytest.raises(InvalidInput, match=">= 0"):
        price_list(price_per_gb_month="-1")
    with pytest.raises(InvalidInput, match="expected a number"):
        price_list(price_per_gb_month="cheap")
    with pytest.raises(InvalidInput, match="not both"):
        price_list("wasabi", price_per_gb_month=1)
    with pytest.raises(InvalidTenant):
        await store.report(tenant="Not Valid")
    with pytest.raises(InvalidInput, match="after today"):
        await store.report(since=clock().date() + timedelta(days=1))


def test_custom_prices_default_to_free_egress() -> None:
    """--price-per-gb-month alone gives a 'custom' list with egress at 0; --egress-price-per-gb sets it."""
    assert price_list(price_per_gb_month="0.02") == PriceList("custom", Decimal("0.02"), Decimal(0))
    assert price_list(price_per_gb_month=0.02, egress_price_per_gb="0.05").egress_per_gb == Decimal("0.05")
    assert price_list("cloudflare-r2", egress_price_per_gb=1).egress_per_gb == Decimal(1)


async def test_report_json_shape(built: BlobStore) -> None:
    """to_dict() is JSON-ready: window, prices as decimal strings, one dict per tenant and the total."""
    data = (await built.report(pricing=PRICES)).to_dict()
    assert (data["since"], data["until"], data["tenant"]) == ("2026-04-01", "2026-04-01", None)
    assert data["pricing"] == {
        "name": "custom",
        "storage_per_gb_month": "10000000",
        "egress_per_gb": "20000000",
        "currency": "USD",
        "gb_bytes": 10**9,
        "storage_class_prices": {},
    }
    assert _row_dict(data, "acme")["storage_cost"] == "10.18"
    assert data["total"]["total_cost"] == "48.81"


def _row_dict(data: dict[str, object], tenant: str) -> dict[str, object]:
    rows = data["tenants"]
    assert isinstance(rows, list)
    return next(row for row in rows if row["tenant"] == tenant)


async def test_compressed_bytes_are_attributed_and_costed(store: BlobStore) -> None:
    """A compressible blob shared by two tenants (3 references), an incompressible one and a blob from before
    frames (raw, stored_size NULL): compressed bytes are attributed like attributed bytes (each reference
    ``stored // n``, the remainder to the first holder), savings by dedup and by compression are apart, money
    is on compressed bytes, and pending GC counts and costs what storage holds."""
    text = b"".join(b"%06d,order,shipped,EUR,12.50\n" % n for n in range(3500))  # 105,000 bytes, one frame
    noise, old, gone = os.urandom(50_000), os.urandom(7_000), text[:60_000] + b"deleted"
    packed, packed_gone = (len(zstandard.ZstdCompressor(level=3).compress(data)) for data in (text, gone))
    assert packed < len(text) // 4
    acme, globex = store.tenant("acme"), store.tenant("globex")
    await acme.put("text", text)
    await acme.put("noise", noise)
    await acme.put("old", old)
    await acme.put("gone", gone)
    await acme.delete("gone")
    await globex.put("text-1", text)
    await globex.put("text-2", text)
    async with store.database.engine.begin() as conn:
        await conn.execute(sqla_text("UPDATE blobs SET frames = NULL, stored_size = NULL WHERE size = 7000"))
    report = await store.report(pricing=PRICES)

    acme_row, globex_row = report.tenants
    share, remainder = divmod(packed, 3)
    assert acme_row.attributed_bytes == len(text) // 3 + len(text) % 3 + 50_000 + 7_000
    assert acme_row.compressed_bytes == share + remainder + 50_000 + 7_000
    assert globex_row.compressed_bytes == 2 * share
    for row in report.tenants:
        assert row.bytes_saved == row.logical_bytes - row.attributed_bytes
        assert row.compression_saved_bytes == row.attributed_bytes - row.compressed_bytes
        assert row.compression_ratio == row.attributed_bytes / row.compressed_bytes
        assert row.storage_cost == Decimal(row.compressed_bytes) / 100  # $10^7 per GB-month: a cent per byte
    assert globex_row.to_dict()["compressed_bytes"] == 2 * share

    total = report.total
    assert total.compressed_bytes == packed + 50_000 + 7_000
    assert total.compression_saved_bytes == len(text) - packed
    assert (total.pending_gc_bytes, total.pending_gc_compressed_bytes) == (len(gone), packed_gone)
    assert total.pending_gc_cost == Decimal(packed_gone) / 100
    assert total.stored_bytes == len(text) + 57_000 + len(gone)
    assert total.compressed_stored_bytes == packed + 57_000 + packed_gone
    stored_objects = [info.size async for info in store.storage.list("data/")]
    assert sum(stored_objects) == total.compressed_stored_bytes
