"""S3 access keys: a secret shown once and stored sealed, one tenant, scopes, expiry, revocation; the CLI."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from blobstore import BlobStore, InvalidInput, InvalidTenant, NotFound
from blobstore.auth import access_keys
from tests.support.cli_helpers import invoke
from tests.support.stores import FakeClock
from tests.support.workers import rows


async def test_a_created_key_is_active_with_its_secret_tenant_and_scopes(store: BlobStore) -> None:
    """create returns an id and secret; active() gives back that secret, the tenant and the scopes."""
    new = await access_keys.create(store.core, "acme", scopes=["write", "read"], name="backup")
    assert new.info.id.startswith("AKBS")
    assert len(new.info.id) == 20
    assert len(new.secret) == 40
    found = await access_keys.active(store.core, new.info.id)
    assert found is not None
    assert (found.secret, found.info.tenant, found.info.scopes, found.info.name) == (
        new.secret,
        "acme",
        ("read", "write"),
        "backup",
    )


async def test_the_database_holds_the_secret_only_sealed(store: BlobStore) -> None:
    """A dump of access_keys shows neither the secret nor anything it can be read from without the sealing key."""
    new = await access_keys.create(store.core, "acme")
    stored = await rows(store, "SELECT * FROM access_keys")
    assert len(stored) == 1
    assert all(new.secret not in str(value) for value in stored[0])


async def test_expired_revoked_and_unknown_keys_are_not_active(store: BlobStore, clock: FakeClock) -> None:
    """An expired key, a revoked key, an unknown id and a malformed id all give None."""
    expiring = await access_keys.create(store.core, "acme", expires_in=timedelta(hours=1))
    revoked = await access_keys.create(store.core, "acme")
    assert await access_keys.active(store.core, expiring.info.id) is not None
    clock.advance(3601)
    assert await access_keys.active(store.core, expiring.info.id) is None
    await access_keys.revoke(store.core, revoked.info.id)
    assert await access_keys.active(store.core, revoked.info.id) is None
    assert await access_keys.active(store.core, "AKBS0123456789ABCDEF") is None
    assert await access_keys.active(store.core, "not an id") is None


@pytest.mark.parametrize(
    ("tenant", "kwargs", "error"),
    [
        ("Bad!", {}, InvalidTenant),
        ("acme", {"scopes": ["sign"]}, InvalidInput),
        ("acme", {"scopes": []}, InvalidInput),
        ("acme", {"expires_in": timedelta(0)}, InvalidInput),
        ("acme", {"name": ""}, InvalidInput),
    ],
)
async def test_bad_requests_create_nothing(store: BlobStore, tenant: str, kwargs: dict, error: type) -> None:
    """A bad tenant, scope, lifetime or name is one clear error, and no key is stored."""
    with pytest.raises(error):
        await access_keys.create(store.core, tenant, **kwargs)
    assert await access_keys.list_keys(store.core) == []


async def test_revoking_an_unknown_or_malformed_id(store: BlobStore) -> None:
    """An unknown id is NotFound, a malformed one InvalidInput."""
    with pytest.raises(NotFound):
        await access_keys.revoke(store.core, "AKBS0123456789ABCDEF")
    with pytest.raises(InvalidInput):
        await access_keys.revoke(store.core, "0123")


def test_access_key_commands(tmp_path: Path) -> None:
    """create prints id and secret (--json too), ls lists without secrets, revoke marks a key revoked."""
    created = json.loads(
        invoke(
            ["access-key", "create", "acme", "--scope", "read", "--expires", "90d", "--name", "n", "--json"],
            home=tmp_path,
        )
        .ok()
        .stdout
    )
    assert created["tenant"] == "acme"
    assert created["scopes"] == ["read"]
    assert created["name"] == "n"
    assert created["expires_at"] is not None
    text = invoke(["access-key", "create", "acme"], home=tmp_path).ok().stdout
    assert "access key id:" in text
    assert "secret access key:" in text
    listed = json.loads(invoke(["access-key", "ls", "acme", "--json"], home=tmp_path).ok().stdout)
    assert next(entry["id"] for entry in listed) == created["access_key_id"]
    assert all(created["secret_access_key"] not in json.dumps(entry) for entry in listed)
    invoke(["access-key", "revoke", created["access_key_id"]], home=tmp_path).ok()
    assert "revoked" in invoke(["access-key", "ls"], home=tmp_path).ok().stdout
    invoke(["access-key", "revoke", "AKBS0123456789ABCDEF"], home=tmp_path).failed("no such access key")
    invoke(["access-key", "create", "acme", "--scope", "sign"], home=tmp_path).failed("scopes")
    invoke(["access-key", "create", "acme", "--expires", "soon"], home=tmp_path).failed("duration", code=2)
