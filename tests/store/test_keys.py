"""Tenant and key naming rules (docs/python-api.md, "Keys"), and that bad names fail before any I/O."""

from __future__ import annotations

import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest

from blobstore import BlobStore, InvalidInput, InvalidKey, InvalidTenant
from blobstore.model.keys import (
    MAX_KEY_BYTES,
    validate_byte_range,
    validate_digest,
    validate_key,
    validate_prefix,
    validate_tenant,
)
from tests.support.live_server import Connect
from tests.support.workers import rows

# --- tenants ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a", "0", "acme", "acme-corp_eu.1", "9lives", "a" * 63, "a.-_", "x" + "-" * 62])
def test_valid_tenant_names_are_accepted(name: str) -> None:
    """Tenant names of 1-63 chars of a-z 0-9 - _ . starting with a letter or digit are accepted unchanged."""
    assert validate_tenant(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "Acme",
        "ACME",
        "a" * 64,
        "-acme",
        "_acme",
        ".acme",
        "acmé",
        "\uff41cme",  # fullwidth a
        "acme corp",
        "acme/x",
        "acme\n",
        "acme\0",
        "ac:me",
        "١٢",  # Arabic-Indic digits are digits, but not 0-9
    ],
)
def test_invalid_tenant_names_are_rejected(name: str) -> None:
    """Uppercase, empty, 64 chars, a leading -/_/., unicode, spaces and punctuation raise InvalidTenant."""
    with pytest.raises(InvalidTenant, match="invalid tenant"):
        validate_tenant(name)


@pytest.mark.parametrize("name", [None, 1, b"acme"])
def test_non_string_tenant_names_are_rejected(name: object) -> None:
    """A tenant name that is not a str raises InvalidTenant, not TypeError."""
    with pytest.raises(InvalidTenant):
        validate_tenant(name)


# --- keys ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "a",
        "invoices/2026/11.pdf",
        "with space/and%percent_under\\back",
        "...",
        "a/.../b",
        ".hidden",
        "a/.b/c..",
        "ключ/日本語/🙂",
        "CaSe",
        "x" * MAX_KEY_BYTES,
        "trailing.",
        "photos/",
        "/",
        "/leading",
        "a//b",
        "./a",
        "a/./b",
        ".",
        "..",
        "../a",
        "a/../b",
        "a/..",
    ],
)
def test_valid_keys_are_accepted_unchanged(key: str) -> None:
    """Keys of 1-1088 UTF-8 bytes without control chars are returned as given: directory markers, a leading
    '/' and empty, '.' or '..' segments are ordinary literal keys, as in S3."""
    assert validate_key(key) is key


def test_the_limit_leaves_room_for_a_bucket_and_an_s3_key() -> None:
    """An S3 key of 1024 bytes in a bucket of 63 characters is the native key ``<bucket>/<key>`` of 1088 bytes."""
    assert MAX_KEY_BYTES == 63 + 1 + 1024


def test_a_multibyte_key_of_exactly_the_limit_is_accepted() -> None:
    """The limit counts UTF-8 bytes: 272 four-byte characters (1088 bytes) are accepted."""
    key = "🙂" * 272
    assert len(key.encode()) == MAX_KEY_BYTES
    assert validate_key(key) == key


@pytest.mark.parametrize("key", ["🙂" * 272 + "a", "é" * 544 + "a", "x" * 1089, "é" * 545])
def test_keys_over_the_limit_are_rejected(key: str) -> None:
    """A key of 1089 or more UTF-8 bytes raises InvalidKey, even when it has fewer than 1088 characters."""
    assert len(key.encode()) > MAX_KEY_BYTES
    with pytest.raises(InvalidKey, match=f"1-{MAX_KEY_BYTES} bytes"):
        validate_key(key)


@pytest.mark.parametrize(
    "key",
    [
        "",
        "a\0b",
        "\0",
        "tab\there",
        "new\nline",
        "cr\r",
        "del\x7f",
        "c1\x85control",
        "esc\x1b[0m",
        "invoice\u202egpj.exe",
        "rtl\u202bembedding",
        "isolate\u2066x\u2069",
        "mark\u200fright",
        "arabic\u061cmark",
        "line\u2028separator",
        "paragraph\u2029separator",
    ],
)
def test_invalid_keys_are_rejected(key: str) -> None:
    """Empty keys, NUL/control characters and spoofing characters raise InvalidKey."""
    with pytest.raises(InvalidKey):
        validate_key(key)


@pytest.mark.parametrize("key", ["\ud800", "a\udfffb", "🙂\udc00"])
def test_lone_surrogates_are_rejected(key: str) -> None:
    """A key with a lone surrogate (not encodable as UTF-8) raises InvalidKey, not UnicodeEncodeError."""
    with pytest.raises(InvalidKey, match="UTF-8"):
        validate_key(key)


@pytest.mark.parametrize("key", [None, 1, b"bytes-key", ["a"]])
def test_non_string_keys_are_rejected(key: object) -> None:
    """A key that is not a str raises InvalidKey."""
    with pytest.raises(InvalidKey):
        validate_key(key)


def test_keys_are_not_normalised() -> None:
    """NFC and NFD spellings of the same text are two different, individually valid keys."""
    nfc, nfd = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")
    assert nfc != nfd
    assert validate_key(nfc) == nfc
    assert validate_key(nfd) == nfd


# --- prefixes, digests, byte ranges ----------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["", "a", "a/", "/", "a//", "%_\\", "x" * MAX_KEY_BYTES])
def test_listing_prefixes_need_not_be_full_keys(prefix: str) -> None:
    """A listing prefix may be empty or end in '/', but it is still checked for control chars and length."""
    assert validate_prefix(prefix) == prefix


@pytest.mark.parametrize("prefix", ["a\0", "\n", "x" * (MAX_KEY_BYTES + 1), None])
def test_bad_listing_prefixes_are_rejected(prefix: object) -> None:
    """A prefix with control characters, over 1088 bytes, or not a str raises InvalidKey."""
    with pytest.raises(InvalidKey):
        validate_prefix(prefix)


def test_digests_must_be_64_lowercase_hex() -> None:
    """Only 64 lowercase hex characters are a digest; anything else raises InvalidInput."""
    assert validate_digest("a" * 64) == "a" * 64
    for bad in ["A" * 64, "a" * 63, "a" * 65, "g" * 64, "", None, b"a" * 64]:
        with pytest.raises(InvalidInput):
            validate_digest(bad)


@pytest.mark.parametrize(
    "byte_range", [(-1, 3), (5, 4), (0,), (0, 1, 2), [0, 1], (0.0, 1), (True, 2), "0-1", (0, None)]
)
def test_invalid_byte_ranges_are_rejected(byte_range: object) -> None:
    """Byte ranges must be a (first, last) tuple of ints with 0 <= first <= last; else InvalidInput."""
    with pytest.raises(InvalidInput, match="byte range"):
        validate_byte_range(byte_range)


def test_valid_byte_ranges_are_returned() -> None:
    """None means the whole object; (first, last) is returned as an inclusive pair."""
    assert validate_byte_range(None) is None
    assert validate_byte_range((0, 0)) == (0, 0)
    assert validate_byte_range((3, 10**12)) == (3, 10**12)


# --- before any I/O --------------------------------------------------------------------------------


class _NoIO:
    """Stands in for the database and storage: any use fails the test."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"I/O attempted: {name}")


BAD_KEYS = ["", "nul\0", "x" * (MAX_KEY_BYTES + 1), "\ud800", "line\u2028"]


@pytest.mark.parametrize("bad", BAD_KEYS)
async def test_every_operation_rejects_a_bad_key_before_any_io(
    store: BlobStore, bad: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """put/get/open/stat/exists/copy/delete/list raise InvalidKey without touching the database or storage."""
    monkeypatch.setattr(store, "core", replace(store.core, database=_NoIO(), storage=_NoIO()))
    acme = store.tenant("acme")
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: acme.put(bad, b"data"),
        lambda: acme.put(bad, "/no/such/file/anywhere"),  # the key is checked before the path is touched
        lambda: acme.put(bad, digest="a" * 64),
        lambda: acme.get(bad),
        lambda: acme.stat(bad),
        lambda: acme.exists(bad),
        lambda: acme.delete(bad),
        lambda: acme.copy(bad, "ok"),
        lambda: acme.copy("ok", bad),
        lambda: acme.list(prefix="p\0" + bad),
    ]
    for call in calls:
        with pytest.raises(InvalidKey):
            await call()
    with pytest.raises(InvalidKey):
        async with acme.open(bad):
            pass


async def test_bad_keys_leave_no_trace(store: BlobStore) -> None:
    """After rejected puts of bad keys the store has no tenant, blob, ref or stored object."""
    acme = store.tenant("acme")
    for bad in BAD_KEYS:
        with pytest.raises(InvalidKey):
            await acme.put(bad, b"data")
    assert await rows(store, "SELECT name FROM tenants") == []
    assert await rows(store, "SELECT id FROM blobs") == []
    assert await rows(store, "SELECT key FROM refs") == []
    assert [info.key async for info in store.storage.list("data/")] == []


@pytest.mark.parametrize("bad", ["Acme", "", "a" * 64, "-x", "é"])
def test_store_rejects_a_bad_tenant_name(store: BlobStore, bad: str) -> None:
    """BlobStore.tenant raises InvalidTenant for a bad name."""
    with pytest.raises(InvalidTenant):
        store.tenant(bad)


async def test_keys_are_case_sensitive_and_unnormalised_in_the_store(store: BlobStore) -> None:
    """'K' and 'k', and NFC and NFD 'é', are four distinct keys holding their own bytes, listed literally."""
    acme = store.tenant("acme")
    nfc, nfd = unicodedata.normalize("NFC", "é"), unicodedata.normalize("NFD", "é")
    await acme.put("K", b"upper")
    await acme.put("k", b"lower")
    await acme.put(nfc, b"nfc")
    await acme.put(nfd, b"nfd")
    assert await acme.get("K") == b"upper"
    assert await acme.get("k") == b"lower"
    assert await acme.get(nfc) == b"nfc"
    assert await acme.get(nfd) == b"nfd"
    listed = [item.key for item in await acme.list()]
    assert sorted(listed) == sorted(["K", "k", nfc, nfd])
    assert nfc in listed
    assert nfd in listed
    assert await acme.delete(nfd)
    assert await acme.get(nfc) == b"nfc"
    assert not await acme.exists(nfd)


@pytest.mark.parametrize("key", ["dir/" + "é" * 542, "dir/" + "x" * 1084])
async def test_a_key_of_the_longest_length_round_trips(store: BlobStore, key: str) -> None:
    """A key of exactly 1088 UTF-8 bytes (multibyte, or 1088 ASCII characters) is stored, read, and listed."""
    acme = store.tenant("acme")
    assert len(key.encode()) == MAX_KEY_BYTES
    await acme.put(key, b"long")
    assert await acme.get(key) == b"long"
    assert [item.key for item in await acme.list("dir/")] == [key]


@pytest.mark.parametrize("prefix", ["\udcff", "ok/\ud800", "line\u2028", "\u202e"])
def test_listing_prefixes_with_lone_surrogates_or_spoofing_characters_are_rejected(prefix: str) -> None:
    """A prefix (or ``after``) that no key could start with is an InvalidKey, not a database error."""
    with pytest.raises(InvalidKey):
        validate_prefix(prefix)


@pytest.mark.parametrize(
    "metadata",
    [
        {"name\0": "v"},
        {"name": "v\0"},
        {"na\nme": "v"},
        {"name": "line\rbreak"},
        {"name": "\udcff"},
        {"\ud800": "v"},
        {"name": "spoof\u202e"},
        {"": "empty name"},
    ],
)
async def test_metadata_with_control_characters_or_surrogates_is_rejected(
    store: BlobStore, metadata: dict[str, str]
) -> None:
    """Metadata names and values must be printable text: InvalidInput, and nothing is stored."""
    with pytest.raises(InvalidInput):
        await store.tenant("acme").put("k", b"x", metadata=metadata)
    assert not await store.tenant("acme").exists("k")


async def test_listing_with_a_surrogate_prefix_is_an_invalid_key_in_the_store(store: BlobStore) -> None:
    """Tenant.list refuses undecodable prefixes and cursors before they reach the database."""
    acme = store.tenant("acme")
    await acme.put("k", b"x")
    with pytest.raises(InvalidKey):
        await acme.list(prefix="\udcff")
    with pytest.raises(InvalidKey):
        await acme.list(after="k\udcff")


# --- literal keys: directory markers, empty, '.' and '..' segments ------------------------------------

LITERAL_KEYS = ["photos/", "a//b", "a/./b", "a/../b", ".", "..", "/lead", "b", "a/b"]


async def test_keys_with_dot_and_empty_segments_are_literal(store: BlobStore, connect: Connect) -> None:
    """Each of these keys holds its own bytes, in-process and over HTTP: none is normalised or resolved, so
    ``a/../b`` and ``b`` (and ``a/./b`` and ``a/b``) are different keys; listing and prefixes are literal."""
    acme = await connect(store, "acme")
    for key in LITERAL_KEYS:
        await acme.put(key, key.encode())
    for key in LITERAL_KEYS:
        assert await acme.get(key) == key.encode()
        assert (await acme.stat(key)).key == key
    assert [item.key for item in await acme.list()] == sorted(LITERAL_KEYS)
    assert [item.key for item in await acme.list("a/")] == ["a/../b", "a/./b", "a//b", "a/b"]  # code-point order
    assert [item.key for item in await acme.list("photos/")] == ["photos/"]
    await acme.copy("a/../b", "copy/./of/..")
    assert await acme.get("copy/./of/..") == b"a/../b"
    assert await acme.delete("a/../b")
    assert not await acme.exists("a/../b")
    assert await acme.get("b") == b"b"
    assert await acme.get("a/b") == b"a/b"
