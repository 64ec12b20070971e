"""API tokens: created with a secret shown once and stored hashed, scoped to one tenant, expiring, revocable."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from blobstore import BlobStore, InvalidInput, InvalidTenant, NotFound, Unauthorized
from blobstore.auth import tokens as tokens_api
from blobstore.db import tokens as tokens_db
from blobstore.testing.statements import statements_sent
from tests.support.cli_helpers import invoke
from tests.support.stores import FakeClock
from tests.support.workers import rows


async def test_a_created_token_authenticates_as_its_tenant_with_its_scopes(store: BlobStore) -> None:
    """create returns a secret that authenticate accepts, naming the tenant and scopes it was made with."""
    new = await tokens_api.create(store.core, "acme", scopes=["write", "read"], name="ci")
    assert new.token.startswith("bst~acme~")
    info = await tokens_api.authenticate(store.core, new.token)
    assert (info.id, info.tenant, info.scopes, info.name) == (new.info.id, "acme", ("read", "write"), "ci")
    assert info.allows("acme", "read")
    assert info.allows("acme", "write")
    assert not info.allows("acme", "delete")
    assert not info.allows("other", "read")
    assert tokens_api.tenant_of(new.token) == "acme"


async def test_only_a_hash_of_the_secret_is_stored(store: BlobStore) -> None:
    """The database holds the SHA-256 of the secret, never the secret or the token."""
    new = await tokens_api.create(store.core, "acme")
    secret = new.token.rsplit("~", 1)[1]
    stored = await rows(store, "SELECT id, secret_hash FROM tokens")
    assert len(stored) == 1
    assert stored[0][0] == new.info.id
    assert secret not in stored[0][1]
    assert len(stored[0][1]) == 64


@pytest.mark.parametrize(
    "mangle",
    [
        lambda token: None,
        lambda token: "",
        lambda token: "Bearer",
        lambda token: token + "x",
        lambda token: token[:-1] + ("A" if token[-1] != "A" else "B"),
        lambda token: token.replace("bst~acme~", "bst~other~"),
        lambda token: token.replace("~", "_"),
        lambda token: "bst~acme~0000000000000000~" + token.rsplit("~", 1)[1],
    ],
    ids=["missing", "empty", "garbage", "longer", "wrong-secret", "wrong-tenant", "malformed", "unknown-id"],
)
async def test_missing_malformed_or_wrong_tokens_are_unauthorized(store: BlobStore, mangle: object) -> None:
    """authenticate raises Unauthorized for a missing, malformed, unknown or tampered token."""
    new = await tokens_api.create(store.core, "acme")
    with pytest.raises(Unauthorized):
        await tokens_api.authenticate(store.core, mangle(new.token))  # type: ignore[operator]


async def test_an_expired_token_is_unauthorized(store: BlobStore, clock: FakeClock) -> None:
    """A token stops authenticating the moment its lifetime ends."""
    new = await tokens_api.create(store.core, "acme", expires_in=timedelta(hours=1))
    clock.advance(3599)
    await tokens_api.authenticate(store.core, new.token)
    clock.advance(1)
    with pytest.raises(Unauthorized):
        await tokens_api.authenticate(store.core, new.token)


async def test_revocation_is_seen_by_every_store_at_once(open_store: object, deployment: str) -> None:
    """A token revoked through one store (server process) is refused by another one immediately."""
    first = await open_store(deployment)  # type: ignore[operator]
    second = await open_store(deployment)  # type: ignore[operator]
    new = await tokens_api.create(first, "acme")
    await tokens_api.authenticate(second, new.token)
    revoked = await tokens_api.revoke(first, new.info.id)
    assert revoked.revoked_at is not None
    with pytest.raises(Unauthorized):
        await tokens_api.authenticate(second, new.token)
    again = await tokens_api.revoke(second, new.info.id)
    assert again.revoked_at == revoked.revoked_at


async def test_the_lookup_on_the_driver_reads_what_the_query_through_sqlalchemy_reads(
    store: BlobStore, clock: FakeClock
) -> None:
    """lookup_token (the one every request makes) returns find_token's row, times included, for a token with no
    name or expiry, one with both, and a revoked one, and whether the tenant has a quota; None for an unknown
    id; one statement, reported."""
    await store.set_quota("beta", max_objects=10)
    plain = await tokens_api.create(store.core, "acme", scopes=["read"])
    clock.advance(1.5)
    named = await tokens_api.create(store.core, "acme", expires_in=timedelta(days=1, microseconds=7), name="ci")
    revoked = await tokens_api.create(store.core, "beta", scopes=["read", "sign"])
    clock.advance(2)
    await tokens_api.revoke(store.core, revoked.info.id)
    for new in (plain, named, revoked):
        expected = await store.database.read(lambda conn, new=new: tokens_db.find_token(conn, new.info.id))
        with statements_sent(store) as sent:
            found = await tokens_db.lookup_token(store.database, new.info.id)
        assert found is not None
        assert found.row == expected
        assert found.quota_set == (new is revoked)  # beta has a quota, acme none
        assert len(sent) == 1
    assert await tokens_db.lookup_token(store.database, "0123456789abcdef") is None


async def test_list_shows_every_token_of_a_tenant_without_secrets(store: BlobStore, clock: FakeClock) -> None:
    """list_tokens returns tokens by tenant and age (revoked ones too), filtered by tenant on request."""
    a1 = await tokens_api.create(store.core, "acme", name="one")
    clock.advance(1)
    a2 = await tokens_api.create(store.core, "acme", scopes=["read"])
    b1 = await tokens_api.create(store.core, "beta")
    await tokens_api.revoke(store.core, a2.info.id)
    assert [info.id for info in await tokens_api.list_tokens(store.core, "acme")] == [a1.info.id, a2.info.id]
    everything = await tokens_api.list_tokens(store.core)
    assert [info.tenant for info in everything] == ["acme", "acme", "beta"]
    assert b1.info.id in {info.id for info in everything}
    assert "token" not in json.dumps([info.to_dict() for info in everything])


@pytest.mark.parametrize(
    ("tenant", "kwargs", "error"),
    [
        ("Bad!", {}, InvalidTenant),
        ("acme", {"scopes": []}, InvalidInput),
        ("acme", {"scopes": ["read", "admin"]}, InvalidInput),
        ("acme", {"expires_in": timedelta(0)}, InvalidInput),
        ("acme", {"name": "a\nb"}, InvalidInput),
    ],
)
async def test_bad_token_requests_create_nothing(store: BlobStore, tenant: str, kwargs: dict, error: type) -> None:
    """A bad tenant, scope set, lifetime or name raises before anything is stored."""
    with pytest.raises(error):
        await tokens_api.create(store.core, tenant, **kwargs)
    assert await rows(store, "SELECT id FROM tokens") == []


async def test_revoking_an_unknown_or_malformed_id(store: BlobStore) -> None:
    """revoke raises NotFound for an unknown id and InvalidInput for a malformed one."""
    with pytest.raises(NotFound):
        await tokens_api.revoke(store.core, "0123456789abcdef")
    with pytest.raises(InvalidInput):
        await tokens_api.revoke(store.core, "../etc")


def test_token_commands(tmp_path: Path) -> None:
    """token create prints only the token; ls shows it without the secret; revoke marks it revoked."""
    token = invoke(
        ["token", "create", "acme", "--scope", "read,sign", "--expires", "30d", "--name", "ci"], home=tmp_path
    )
    secret = token.ok().stdout.strip()
    assert secret.startswith("bst~acme~")
    assert "\n" not in secret
    listed = json.loads(invoke(["token", "ls", "acme", "--json"], home=tmp_path).ok().stdout)
    assert [(t["tenant"], t["scopes"], t["name"], t["revoked_at"]) for t in listed] == [
        ("acme", ["read", "sign"], "ci", None)
    ]
    assert listed[0]["expires_at"] is not None
    table = invoke(["token", "ls"], home=tmp_path).ok().stdout
    assert listed[0]["id"] in table
    assert "active" in table
    assert secret.rsplit("~", 1)[1] not in table
    invoke(["token", "revoke", listed[0]["id"]], home=tmp_path).ok()
    assert "revoked" in invoke(["token", "ls"], home=tmp_path).ok().stdout
    invoke(["token", "revoke", "0123456789abcdef"], home=tmp_path).failed("no such token")
    invoke(["token", "create", "acme", "--scope", "root"], home=tmp_path).failed("scopes")
    invoke(["token", "create", "acme", "--expires", "soon"], home=tmp_path).failed("duration", code=2)
