"""Per-tenant quotas: the API, enforcement on every kind of write, fsck of usage, and the CLI."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
from sqlalchemy import text

from blobstore import BlobStore, InvalidInput, InvalidTenant, QuotaExceeded
from blobstore.accounting.quotas import Quota
from blobstore.cli.tenant import parse_size
from tests.support.cli_helpers import Run, invoke
from tests.support.stores import StoreFactory
from tests.support.workers import data_objects, scalar

#: What every QuotaExceeded message says: the tenant, the usage and the limits.
QUOTA_MESSAGE = re.compile(
    r"tenant '[a-z0-9._-]+' quota exceeded: this put needs -?\d+ more bytes and \d+ more objects; "
    r"usage is \d+ bytes \(limit (\d+|none)\) and \d+ objects \(limit (\d+|none)\)"
)


async def _stored_objects_match_live_blobs(store: BlobStore) -> None:
    live = await scalar(store, "SELECT COUNT(*) FROM blobs WHERE state = 'live'")
    assert len(await data_objects(store)) == live
    assert await scalar(store, "SELECT COUNT(*) FROM blobs WHERE state <> 'live'") == 0


async def test_set_quota_creates_the_tenant_and_reads_back(store: BlobStore) -> None:
    """Setting a quota for a new tenant creates it with zero usage; quota() and tenants() return the limits."""
    assert await store.quota("fresh") == Quota("fresh", 0, 0, None, None)
    assert await store.set_quota("fresh", max_bytes=1000, max_objects=3) == Quota("fresh", 0, 0, 1000, 3)
    assert await store.quota("fresh") == Quota("fresh", 0, 0, 1000, 3)
    await store.tenant("other").put("k", b"abc")
    assert await store.tenants() == [Quota("fresh", 0, 0, 1000, 3), Quota("other", 3, 1, None, None)]
    assert (await store.quota("fresh")).to_dict() == {
        "tenant": "fresh",
        "used_bytes": 0,
        "used_objects": 0,
        "max_bytes": 1000,
        "max_objects": 3,
    }


async def test_none_clears_a_limit_and_an_omitted_limit_stays(store: BlobStore) -> None:
    """max_bytes=None removes the byte limit; a limit not passed keeps its value."""
    await store.set_quota("acme", max_bytes=10, max_objects=2)
    assert await store.set_quota("acme", max_bytes=None) == Quota("acme", 0, 0, None, 2)
    assert await store.set_quota("acme", max_objects=5) == Quota("acme", 0, 0, None, 5)
    assert await store.set_quota("acme", max_bytes=0, max_objects=None) == Quota("acme", 0, 0, 0, None)


@pytest.mark.parametrize("bad", [-1, 1.5, "10", True, 2**63])
async def test_bad_limits_are_rejected_and_change_nothing(store: BlobStore, bad: object) -> None:
    """A limit that is not an integer from 0 to 2^63-1 raises InvalidInput, leaving the quota as it was."""
    await store.set_quota("acme", max_bytes=7)
    with pytest.raises(InvalidInput, match="max_objects"):
        await store.set_quota("acme", max_bytes=8, max_objects=bad)  # type: ignore[arg-type]
    assert await store.quota("acme") == Quota("acme", 0, 0, 7, None)
    with pytest.raises(InvalidTenant):
        await store.set_quota("Bad Tenant", max_bytes=1)


async def test_object_limit_refuses_the_next_put_and_stores_nothing(store: BlobStore) -> None:
    """At max_objects, a put of new bytes fails with usage and limits in the message; no ref, row or object remains."""
    await store.set_quota("acme", max_objects=2)
    acme = store.tenant("acme")
    await acme.put("a", b"one")
    await acme.put("b", b"two")
    with pytest.raises(QuotaExceeded) as failure:
        await acme.put("c", b"three")
    assert QUOTA_MESSAGE.fullmatch(str(failure.value)), str(failure.value)
    assert "usage is 6 bytes (limit none) and 2 objects (limit 2)" in str(failure.value)
    assert not await acme.exists("c")
    assert await store.quota("acme") == Quota("acme", 6, 2, None, 2)
    await _stored_objects_match_live_blobs(store)


async def test_byte_limit_counts_logical_bytes_even_when_deduplicated(store: BlobStore) -> None:
    """Bytes another tenant already stores still count in full: usage is logical, never revealing dedup."""
    await store.tenant("globex").put("g", b"x" * 60)
    await store.set_quota("acme", max_bytes=100)
    acme = store.tenant("acme")
    await acme.put("a", b"x" * 60)
    with pytest.raises(QuotaExceeded, match=r"needs 60 more bytes .* usage is 60 bytes \(limit 100\)"):
        await acme.put("b", b"x" * 60)
    assert await store.quota("acme") == Quota("acme", 60, 1, 100, None)


async def test_replacing_a_key_counts_only_the_difference(store: BlobStore) -> None:
    """Replacing a key charges new size minus old size; shrinking always succeeds, even over the limit."""
    await store.set_quota("acme", max_bytes=100, max_objects=1)
    acme = store.tenant("acme")
    await acme.put("a", b"1" * 60)
    await acme.put("a", b"2" * 100)  # +40: exactly at the limit, still one object
    assert await store.quota("acme") == Quota("acme", 100, 1, 100, 1)
    with pytest.raises(QuotaExceeded, match="needs 1 more bytes and 0 more objects"):
        await acme.put("a", b"3" * 101)
    assert await acme.get("a") == b"2" * 100
    await store.set_quota("acme", max_bytes=10)
    await acme.put("a", b"4" * 50)  # over the new limit, but shrinking
    assert await store.quota("acme") == Quota("acme", 50, 1, 10, 1)
    await _stored_objects_match_live_blobs(store)


async def test_deleting_frees_quota(store: BlobStore) -> None:
    """A delete gives back the key's bytes and object, so the next put fits."""
    await store.set_quota("acme", max_bytes=10, max_objects=1)
    acme = store.tenant("acme")
    await acme.put("a", b"a" * 10)
    with pytest.raises(QuotaExceeded):
        await acme.put("b", b"b")
    assert await acme.delete("a")
    assert await store.quota("acme") == Quota("acme", 0, 0, 10, 1)
    await acme.put("b", b"b" * 10)
    assert await store.quota("acme") == Quota("acme", 10, 1, 10, 1)


async def test_copy_counts_as_a_new_object_and_its_bytes(store: BlobStore) -> None:
    """A copy adds one object and the value's size; over a limit it fails and creates nothing."""
    await store.set_quota("acme", max_bytes=25, max_objects=2)
    acme = store.tenant("acme")
    await acme.put("a", b"c" * 10)
    await acme.copy("a", "b")
    assert await store.quota("acme") == Quota("acme", 20, 2, 25, 2)
    await store.set_quota("acme", max_objects=None)
    with pytest.raises(QuotaExceeded, match="needs 10 more bytes and 1 more objects"):
        await acme.copy("a", "c")
    assert not await acme.exists("c")
    assert await scalar(store, "SELECT refcount FROM blobs WHERE state = 'live'") == 2


async def test_put_by_digest_is_charged_like_any_put(store: BlobStore) -> None:
    """Re-binding bytes by digest alone adds an object and its bytes, within the limits."""
    acme = store.tenant("acme")
    info = await acme.put("a", b"d" * 10)
    await store.set_quota("acme", max_objects=1)
    with pytest.raises(QuotaExceeded):
        await acme.put("b", digest=info.digest)
    assert await store.quota("acme") == Quota("acme", 10, 1, None, 1)


async def test_a_limit_below_usage_keeps_data_and_blocks_growth(store: BlobStore) -> None:
    """Lowering a limit under current usage keeps every key readable; growth fails until usage drops."""
    acme = store.tenant("acme")
    await acme.put("a", b"e" * 30)
    await acme.put("b", b"f" * 30)
    await store.set_quota("acme", max_bytes=20, max_objects=1)
    assert await acme.get("a") == b"e" * 30
    with pytest.raises(QuotaExceeded):
        await acme.put("c", b"g")
    await acme.delete("a")
    await acme.delete("b")
    await acme.put("c", b"g" * 20)
    assert await store.quota("acme") == Quota("acme", 20, 1, 20, 1)


async def test_quotas_of_one_tenant_never_limit_another(store: BlobStore) -> None:
    """A tenant at its limit does not stop other tenants, even from storing the same bytes."""
    await store.set_quota("acme", max_objects=0)
    with pytest.raises(QuotaExceeded):
        await store.tenant("acme").put("a", b"same")
    await store.tenant("globex").put("a", b"same")
    assert (await store.quota("globex")).used_objects == 1


async def test_fsck_repairs_usage_drift_injected_in_sql(store: BlobStore) -> None:
    """Usage counters are exact after writes (fsck clean); a drift injected in SQL is reported, then repaired."""
    await store.set_quota("acme", max_bytes=1000)
    acme = store.tenant("acme")
    await acme.put("a", b"h" * 100)
    await acme.copy("a", "b")
    await acme.delete("a")
    assert (await store.fsck()).ok
    async with store.database.engine.begin() as conn:
        await conn.execute(text("UPDATE tenants SET used_bytes = used_bytes + 700, used_objects = 5"))
    with pytest.raises(QuotaExceeded):
        await acme.put("c", b"i" * 300)  # the drifted counter blocks a put that fits
    report = await store.fsck()
    assert [problem.kind for problem in report.problems] == ["usage-drift"]
    assert not report.ok
    assert (await store.fsck(repair=True)).problems[0].repaired
    assert (await store.fsck()).ok
    assert await store.quota("acme") == Quota("acme", 100, 1, 1000, None)
    await acme.put("c", b"i" * 300)


@pytest.mark.parametrize(
    ("text", "size"),
    [("1234", 1234), ("10GB", 10**10), ("512MiB", 512 * 2**20), ("1.5 kB", 1500), ("2TiB", 2 * 2**40), ("0b", 0)],
)
def test_parse_size_accepts_decimal_and_binary_units(text: str, size: int) -> None:
    """--max-bytes takes plain bytes or a number with kB/MB/GB/TB/PB (10^3) or KiB/MiB/GiB/TiB/PiB (2^10) units."""
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "ten", "10XB", "1.5B", "-1GB", "1e9"])
def test_parse_size_rejects_what_is_not_a_whole_size(text: str) -> None:
    """Unknown units, fractions of a byte, negatives and exponents are refused with a hint."""
    with pytest.raises(ValueError, match=r"size|whole"):
        parse_size(text)


async def test_cli_quota_set_show_and_ls(open_store: StoreFactory) -> None:
    """`tenant quota set/show` and `tenant ls` work in people's text and in JSON, with human sizes."""
    store = await open_store("sqlite-local")
    home = store.settings.home
    await store.tenant("acme").put("k", b"z" * 2500)
    shown = (await _bs(home, "tenant", "quota", "set", "acme", "--max-bytes", "10kB", "--max-objects", "4")).ok()
    assert shown.stdout.splitlines() == [
        "tenant   acme",
        "objects  1 of 4 (25.0% used)",
        "bytes    2.5 kB (2,500 bytes) of 10.0 kB (10,000 bytes, 25.0% used)",
    ]
    data = json.loads((await _bs(home, "tenant", "quota", "show", "acme", "--json")).ok().stdout)
    assert data == {"tenant": "acme", "used_bytes": 2500, "used_objects": 1, "max_bytes": 10000, "max_objects": 4}
    cleared = await _bs(home, "tenant", "quota", "set", "acme", "--clear-bytes", "--json")
    assert json.loads(cleared.ok().stdout)["max_bytes"] is None
    await _bs(home, "tenant", "quota", "set", "newco", "--max-bytes", "1GiB")
    listing = json.loads((await _bs(home, "tenant", "ls", "--json")).ok().stdout)
    assert [(row["tenant"], row["max_bytes"], row["max_objects"]) for row in listing] == [
        ("acme", None, 4),
        ("newco", 2**30, None),
    ]
    lines = (await _bs(home, "tenant", "ls")).ok().stdout.splitlines()
    assert lines[0].split() == ["TENANT", "OBJECTS", "MAX", "OBJECTS", "BYTES", "MAX", "BYTES"]
    assert lines[1].split() == ["acme", "1", "4", "2.5", "kB", "-"]
    assert lines[2].split() == ["newco", "0", "-", "0", "bytes", "1.1", "GB"]
    assert (await _bs(home, "tenant", "quota", "show", "nobody")).ok().stdout.splitlines()[1:] == [
        "objects  0 (no limit)",
        "bytes    0 bytes (0 bytes) (no limit)",
    ]


async def test_cli_quota_set_rejects_contradictions(open_store: StoreFactory) -> None:
    """Nothing to set, a limit with its own --clear, bad sizes and bad tenants fail with one line."""
    store = await open_store("sqlite-local")
    home = store.settings.home
    (await _bs(home, "tenant", "quota", "set", "acme")).failed("nothing to set", code=2)
    (await _bs(home, "tenant", "quota", "set", "acme", "--max-bytes", "1", "--clear-bytes")).failed(
        "contradict", code=2
    )
    (await _bs(home, "tenant", "quota", "set", "acme", "--max-bytes", "lots")).failed("not a size", code=2)
    (await _bs(home, "tenant", "quota", "set", "acme", "--max-objects", "-1")).failed("--max-objects", code=2)
    (await _bs(home, "tenant", "quota", "show", "Bad!")).failed("invalid tenant")
    assert await store.tenants() == []


async def _bs(home: Path, *args: str) -> Run:
    """``blobstore ARGS`` in-process, in a thread: the command runs its own event loop."""
    return await asyncio.to_thread(invoke, list(args), home=home)
