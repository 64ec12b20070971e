"""Concurrent single puts of a tenant share rounds of the upload protocol (blobstore.core.group_commit) on every
deployment: fewer transactions, and every put still acknowledged, refused or failed on its own."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import pytest

from blobstore import AlreadyExists, BlobInfo, BlobStore, StorageUnavailable
from blobstore.protocol.uploads import Uploader
from blobstore.testing.faults import Fault, FaultyStorage
from tests.support.digests import digest_of
from tests.support.workers import data_objects, invariant_violations


@pytest.fixture
def rounds(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The keys of every round the upload protocol runs, in order."""
    seen: list[list[str]] = []
    original = Uploader.put

    async def recorded(self: Uploader, pending: list[Any], sources: Mapping[int, Any], outcomes: list[Any]) -> None:
        seen.append([item.key for item in pending])
        await original(self, pending, sources, outcomes)

    monkeypatch.setattr(Uploader, "put", recorded)
    return seen


async def test_concurrent_puts_share_rounds_and_each_is_stored(store: BlobStore, rounds: list[list[str]]) -> None:
    acme = store.tenant("acme")
    values = {f"k/{i}": b"bytes of put %d\n" % i * 40 for i in range(24)}

    infos = await asyncio.gather(*(acme.put(key, data) for key, data in values.items()))

    assert [info.key for info in infos] == list(values)
    assert len(rounds) < len(values)  # at least one round took several puts
    assert sorted(key for round_ in rounds for key in round_) == sorted(values)
    for key, data in values.items():
        assert await acme.get(key) == data
    assert len(await data_objects(store)) == len(values)
    assert await invariant_violations(store) == []


async def test_concurrent_puts_of_one_key_each_take_a_round_of_their_own(
    store: BlobStore, rounds: list[list[str]]
) -> None:
    acme = store.tenant("acme")
    values = [b"version %d\n" % i * 30 for i in range(6)]

    await asyncio.gather(*(acme.put("same", data) for data in values))
    created = await asyncio.gather(*(acme.put("once", data, if_absent=True) for data in values), return_exceptions=True)

    assert all(round_.count("same") <= 1 and round_.count("once") <= 1 for round_ in rounds)
    assert await acme.get("same") in values
    assert sum(isinstance(outcome, BlobInfo) for outcome in created) == 1
    assert all(isinstance(outcome, AlreadyExists) for outcome in created if not isinstance(outcome, BlobInfo))
    assert await invariant_violations(store) == []


async def test_a_write_that_fails_in_a_round_fails_only_its_own_put(store: BlobStore, rounds: list[list[str]]) -> None:
    storage = FaultyStorage(store.storage)
    store.core = replace(store.core, storage=storage)
    acme = store.tenant("acme")
    values = {f"k/{i}": b"bytes of put %d\n" % i * 40 for i in range(8)}
    doomed = digest_of(values["k/5"])
    error = StorageUnavailable("injected: 503")
    storage.inject(Fault("write", error=error, key_prefix=f"data/{doomed[:2]}/{doomed}", times=100))

    outcomes = await asyncio.gather(*(acme.put(key, data) for key, data in values.items()), return_exceptions=True)

    assert isinstance(outcomes[5], StorageUnavailable)
    assert all(isinstance(outcome, BlobInfo) for index, outcome in enumerate(outcomes) if index != 5)
    assert any(len(round_) > 1 and "k/5" in round_ for round_ in rounds)  # it failed beside others
    assert not await acme.exists("k/5")
    assert len(await data_objects(store)) == len(values) - 1
    assert await invariant_violations(store) == []
