"""Conditional writes (If-Match, If-Unmodified-Since; RFC 9110 section 13) on put and delete, on every deployment,
over both transports: a write that expects another version of the key fails with PreconditionFailed (412)
and changes nothing, checked in the transaction that binds or unbinds the key, so two writers expecting
the same version never both win."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from blobstore import AlreadyExists, BlobStore, InvalidInput, PreconditionFailed, PutItem
from blobstore.auth import tokens
from blobstore.testing.statements import statements_sent
from tests.store.test_store_semantics import digest_of
from tests.support.conditional_worker import KEYS, initial, written
from tests.support.gate import launch_gated
from tests.support.live_server import Connect, Handle, serving
from tests.support.stores import FakeClock
from tests.support.workers import check_invariants, data_objects, refcount_of, worker_env

WORKER = Path(__file__).parents[1] / "support" / "conditional_worker.py"


async def assert_holds(tenant: Handle, key: str, data: bytes) -> None:
    assert await tenant.get(key) == data
    assert (await tenant.stat(key)).digest == digest_of(data)


# --- If-Match ---------------------------------------------------------------------------------------


async def test_a_put_with_a_stale_etag_fails_and_changes_nothing(store: BlobStore, connect: Connect) -> None:
    """If-Match naming a version the key no longer holds: PreconditionFailed, the key, its blob and storage
    unchanged, and the new bytes never uploaded."""
    acme = await connect(store, "acme")
    stale = await acme.put("k", b"version 1")
    current = await acme.put("k", b"version 2")
    objects = await data_objects(store)
    with pytest.raises(PreconditionFailed):
        await acme.put("k", b"version 3, never stored", if_match=stale.digest)
    await assert_holds(acme, "k", b"version 2")
    assert (await acme.stat("k")).created_at == current.created_at
    assert await data_objects(store) == objects
    assert await refcount_of(store, current.digest) == 1
    await check_invariants(store)


async def test_a_put_with_the_current_etag_replaces_the_key(store: BlobStore, connect: Connect) -> None:
    """If-Match naming the key's current digest (alone, or among others) lets the put replace it."""
    acme = await connect(store, "acme")
    first = await acme.put("k", b"version 1")
    second = await acme.put("k", b"version 2", if_match=first.digest)
    await assert_holds(acme, "k", b"version 2")
    await acme.put("k", b"version 3", if_match=[digest_of(b"something else"), second.digest])
    await assert_holds(acme, "k", b"version 3")
    await check_invariants(store)


async def test_if_match_any_needs_the_key_to_exist(store: BlobStore, connect: Connect) -> None:
    """If-Match ``*`` (and any If-Match) fails on a missing key, creating nothing; ``*`` passes once it exists."""
    acme = await connect(store, "acme")
    with pytest.raises(PreconditionFailed):
        await acme.put("k", b"data", if_match="*")
    with pytest.raises(PreconditionFailed):
        await acme.put("k", b"data", if_match=digest_of(b"data"))
    assert not await acme.exists("k")
    assert await data_objects(store) == []
    await acme.put("k", b"data")
    await acme.put("k", b"other data", if_match="*")
    await assert_holds(acme, "k", b"other data")


async def test_a_put_by_digest_honours_if_match(store: BlobStore, connect: Connect) -> None:
    """Put by digest alone (no bytes sent) checks If-Match like any put."""
    acme = await connect(store, "acme")
    held = await acme.put("held", b"held bytes")
    stale = await acme.put("k", b"version 1")
    await acme.put("k", b"version 2")
    with pytest.raises(PreconditionFailed):
        await acme.put("k", digest=held.digest, if_match=stale.digest)
    await assert_holds(acme, "k", b"version 2")


async def test_a_delete_with_a_stale_etag_fails_and_keeps_the_key(store: BlobStore, connect: Connect) -> None:
    """delete(if_match=stale): PreconditionFailed and the key stays; with the current digest it deletes."""
    acme = await connect(store, "acme")
    stale = await acme.put("k", b"version 1")
    current = await acme.put("k", b"version 2")
    with pytest.raises(PreconditionFailed):
        await acme.delete("k", if_match=stale.digest)
    await assert_holds(acme, "k", b"version 2")
    assert await acme.delete("k", if_match=current.digest) is True
    assert not await acme.exists("k")
    await check_invariants(store)


async def test_a_conditional_delete_of_a_missing_key_fails(store: BlobStore, connect: Connect) -> None:
    """If-Match on a key that does not exist fails (RFC 9110: no current version matches), even ``*``."""
    acme = await connect(store, "acme")
    for tag in ("*", digest_of(b"gone")):
        with pytest.raises(PreconditionFailed):
            await acme.delete("absent", if_match=tag)


async def test_an_empty_if_match_matches_no_version(store: BlobStore, connect: Connect) -> None:
    """``if_match=[]`` (an empty If-Match list) fails whatever the key holds."""
    acme = await connect(store, "acme")
    await acme.put("k", b"data")
    with pytest.raises(PreconditionFailed):
        await acme.put("k", b"other", if_match=[])
    with pytest.raises(PreconditionFailed):
        await acme.delete("k", if_match=[])
    await assert_holds(acme, "k", b"data")


async def test_if_match_takes_digests_only(store: BlobStore, connect: Connect) -> None:
    """An If-Match that is not a digest (nor ``*``) is refused before any write."""
    acme = await connect(store, "acme")
    await acme.put("k", b"data")
    for bad in ('"quoted"', "not-a-digest", [""], 42):
        with pytest.raises(InvalidInput):
            await acme.put("k", b"other", if_match=bad)
        with pytest.raises(InvalidInput):
            await acme.delete("k", if_match=bad)
    await assert_holds(acme, "k", b"data")


async def test_if_absent_is_the_precondition_that_the_key_is_missing(store: BlobStore, connect: Connect) -> None:
    """AlreadyExists (put if_absent on an existing key) is a PreconditionFailed, so one except catches both."""
    acme = await connect(store, "acme")
    await acme.put("k", b"data")
    with pytest.raises(AlreadyExists) as raised:
        await acme.put("k", b"other", if_absent=True)
    assert isinstance(raised.value, PreconditionFailed)


# --- If-Unmodified-Since ----------------------------------------------------------------------------


async def test_if_unmodified_since_fails_when_the_key_changed_after_the_date(
    store: BlobStore, connect: Connect, clock: FakeClock
) -> None:
    """A key written after the date fails the put and the delete; a date at or after its last write (in whole
    seconds, as HTTP dates go) passes."""
    clock.now = clock.now.replace(microsecond=500_000)
    acme = await connect(store, "acme")
    await acme.put("k", b"version 1")
    before = clock.now
    clock.advance(10)
    written_at = (await acme.put("k", b"version 2")).created_at
    with pytest.raises(PreconditionFailed):
        await acme.put("k", b"version 3", if_unmodified_since=before)
    with pytest.raises(PreconditionFailed):
        await acme.delete("k", if_unmodified_since=before)
    await assert_holds(acme, "k", b"version 2")
    same_second = written_at.replace(microsecond=0)  # what a client reads back from Last-Modified
    await acme.put("k", b"version 3", if_unmodified_since=same_second)
    await assert_holds(acme, "k", b"version 3")
    clock.advance(1)
    assert await acme.delete("k", if_unmodified_since=clock.now) is True


async def test_if_unmodified_since_is_ignored_with_if_match_or_without_a_key(
    store: BlobStore, connect: Connect, clock: FakeClock
) -> None:
    """If-Match takes precedence over If-Unmodified-Since; a missing key has no date to compare, so the put
    creates it."""
    acme = await connect(store, "acme")
    long_ago = clock.now - timedelta(days=1)
    await acme.put("new", b"data", if_unmodified_since=long_ago)
    current = await acme.put("k", b"version 1")
    await acme.put("k", b"version 2", if_match=current.digest, if_unmodified_since=long_ago)
    await assert_holds(acme, "k", b"version 2")


async def test_if_unmodified_since_needs_an_aware_datetime(store: BlobStore, connect: Connect) -> None:
    acme = await connect(store, "acme")
    with pytest.raises(InvalidInput):
        await acme.put("k", b"data", if_unmodified_since=datetime(2026, 1, 1))
    with pytest.raises(InvalidInput):
        await acme.put("k", b"data", if_unmodified_since="yesterday")
    assert not await acme.exists("k")


# --- batches ----------------------------------------------------------------------------------------


async def test_put_many_checks_each_items_precondition(store: BlobStore, connect: Connect) -> None:
    """A batch item with a stale If-Match fails alone; the others are stored."""
    acme = await connect(store, "acme")
    stale = await acme.put("a", b"a 1")
    current = await acme.put("a", b"a 2")
    outcomes = await acme.put_many(
        [PutItem("a", b"a 3", if_match=stale.digest), PutItem("b", b"b 1"), PutItem("c", b"c 1", if_match="*")]
    )
    assert [type(outcome) for outcome in outcomes[0::2]] == [PreconditionFailed] * 2
    await assert_holds(acme, "a", b"a 2")
    assert not await acme.exists("c")
    await assert_holds(acme, "b", b"b 1")
    outcomes = await acme.put_many([PutItem("a", b"a 3", if_match=current.digest)])
    await assert_holds(acme, "a", b"a 3")


# --- over HTTP: the headers themselves --------------------------------------------------------------


@pytest.fixture
async def http(store: BlobStore, clock: FakeClock) -> AsyncIterator[httpx.AsyncClient]:
    """A raw HTTP client of a live server of the store, with an all-scopes token of tenant ``acme``."""
    token = await tokens.create(store.core, "acme", scopes=tokens.SCOPES)
    with serving(store.settings, clock=clock) as url:
        auth = {"authorization": f"Bearer {token.token}"}
        async with httpx.AsyncClient(base_url=f"{url}/v1/tenants/acme/objects/", headers=auth, timeout=30) as client:
            yield client


def assert_412(response: httpx.Response) -> None:
    assert response.status_code == 412, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "PreconditionFailed"


async def test_http_stale_if_match_is_412_on_put_and_delete(http: httpx.AsyncClient) -> None:
    """PUT and DELETE with an If-Match of another version: 412 PreconditionFailed; the current ETag passes."""
    old = (await http.put("k", content=b"one")).headers["etag"]
    current = (await http.put("k", content=b"two")).headers["etag"]
    assert_412(await http.put("k", content=b"three", headers={"if-match": old}))
    assert_412(await http.delete("k", headers={"if-match": old}))
    assert (await http.get("k")).content == b"two"
    replaced = await http.put("k", content=b"three", headers={"if-match": f'"abc", {current}'})
    assert replaced.status_code == 200
    assert (await http.delete("k", headers={"if-match": replaced.headers["etag"]})).status_code == 204


async def test_http_weak_and_foreign_tags_never_match(http: httpx.AsyncClient) -> None:
    """Strong comparison: a weak tag of the current digest, or a tag that is no digest, fails with 412 (not 400)."""
    current = (await http.put("k", content=b"one")).headers["etag"]
    for header in (f"W/{current}", '"not a digest"', "garbage", current.strip('"')):
        assert_412(await http.put("k", content=b"two", headers={"if-match": header}))
    assert (await http.get("k")).content == b"one"
    assert_412(await http.put("new", content=b"x", headers={"if-match": "*"}))
    bad_key = await http.put("bell%07", content=b"x", headers={"if-match": "garbage"})
    assert bad_key.status_code == 400, "a request that is bad anyway is refused as such, before its precondition"


async def test_http_if_unmodified_since_uses_last_modified(http: httpx.AsyncClient, clock: FakeClock) -> None:
    """If-Unmodified-Since: the object's Last-Modified passes, a second before it is 412, an unparsable date
    is ignored."""
    await http.put("k", content=b"one")
    last_modified = (await http.head("k")).headers["last-modified"]
    clock.advance(5)
    await http.put("k", content=b"two")
    assert_412(await http.put("k", content=b"three", headers={"if-unmodified-since": last_modified}))
    assert_412(await http.delete("k", headers={"if-unmodified-since": last_modified}))
    now = (await http.head("k")).headers["last-modified"]
    assert (await http.put("k", content=b"three", headers={"if-unmodified-since": now})).status_code == 200
    ignored = await http.put("k", content=b"four", headers={"if-unmodified-since": "the day before yesterday"})
    assert ignored.status_code == 200


# --- cost ---------------------------------------------------------------------------------------------


async def test_a_conditional_put_sends_the_statements_of_a_plain_one(store: BlobStore) -> None:
    """If-Match is checked against the row the binding's lookup already reads: no statement more than a plain
    put on SQLite; on PostgreSQL a plain put is one call of blobstore_put_one and a conditional one takes the
    general single-put path, one call of blobstore_bind_lookup and one write. A failed one stops after the
    lookup."""
    acme = store.tenant("acme")
    current = await acme.put("k", b"shared bytes")
    await acme.put("seed", b"other bytes")
    with statements_sent(store) as plain:
        await acme.put("plain", b"other bytes")
    with statements_sent(store) as conditional:
        await acme.put("k", b"other bytes", if_match=current.digest, if_unmodified_since=current.created_at)
    extra = {"sqlite": 0, "postgresql": 1}[store.database.engine.dialect.name]
    assert len(conditional) == len(plain) + extra, conditional
    with statements_sent(store) as failed, pytest.raises(PreconditionFailed):
        await acme.put("k", b"new bytes", if_match=current.digest)
    # lock the tenant and look up the key (on PostgreSQL one call of blobstore_bind_lookup, which also locks
    # the blobs looked up; blobstore.db.hot_path): nothing recorded or uploaded
    assert len(failed) == {"sqlite": 2, "postgresql": 1}[store.database.engine.dialect.name], failed


async def test_a_conditional_delete_reads_the_key_once_more(store: BlobStore) -> None:
    """A conditional delete reads the locked key before deleting it: one statement more than a plain delete."""
    acme = store.tenant("acme")
    await acme.put("plain", b"bytes")
    current = await acme.put("k", b"bytes")
    with statements_sent(store) as plain:
        await acme.delete("plain")
    with statements_sent(store) as conditional:
        await acme.delete("k", if_match=current.digest)
    assert len(conditional) == len(plain) + 1, conditional


# --- races --------------------------------------------------------------------------------------------


@pytest.mark.slow
async def test_racing_conditional_puts_with_the_same_etag_have_one_winner(store: BlobStore, tmp_path: Path) -> None:
    """Processes put their own bytes to the same keys, each with If-Match of the key's initial version: for
    every key exactly one wins, the key holds the winner's bytes, and the losers leave nothing behind."""
    processes = 3
    acme = store.tenant("acme")
    for index in range(KEYS):
        await acme.put(f"cond/{index}", initial(index))
    commands = [["put"] for _ in range(processes)]
    reports = await launch_gated(WORKER, worker_env(store), tmp_path / "sync", commands, timeout=240)
    for index in range(KEYS):
        winners = [worker for worker, report in enumerate(reports) if index in report["won"]]
        losers = [worker for worker, report in enumerate(reports) if index in report["lost"]]
        assert len(winners) == 1, (index, reports)
        assert sorted(winners + losers) == list(range(processes))
        assert await acme.get(f"cond/{index}") == written(winners[0], index)
    await check_invariants(store)  # the losers' uploads are gone: storage holds the live blobs' objects only
    assert len(await data_objects(store)) == 2 * KEYS  # the initial versions (until GC) and the winners'


@pytest.mark.slow
async def test_racing_conditional_deletes_with_the_same_etag_have_one_winner(store: BlobStore, tmp_path: Path) -> None:
    """Processes delete or replace the same keys, each with If-Match of the initial version: exactly one wins."""
    processes = 3
    acme = store.tenant("acme")
    for index in range(KEYS):
        await acme.put(f"cond/{index}", initial(index))
    commands = [["delete" if worker == 0 else "put"] for worker in range(processes)]
    reports = await launch_gated(WORKER, worker_env(store), tmp_path / "sync", commands, timeout=240)
    for index in range(KEYS):
        winners = [worker for worker, report in enumerate(reports) if index in report["won"]]
        assert len(winners) == 1, (index, reports)
        expected = None if winners[0] == 0 else written(winners[0], index)
        assert (await acme.get(f"cond/{index}") if await acme.exists(f"cond/{index}") else None) == expected
    await check_invariants(store)
