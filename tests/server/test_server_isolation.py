"""Tenant isolation over HTTP: with tenant A's token, every endpoint on B's paths answers exactly as for a tenant
that does not exist, and A's own probes (missing digests, put-by-digest) never reveal B's bytes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from blobstore import BlobStore, wire
from blobstore.auth import tokens
from tests.support.digests import digest_of
from tests.support.live_server import serving
from tests.support.stores import FakeClock

SECRET = b"beta's secret bytes"


@pytest.fixture
async def http(store: BlobStore, clock: FakeClock) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a live server where tenant beta holds key ``k`` (SECRET) and acme holds ``mine``."""
    await store.tenant("beta").put("k", SECRET, content_type="text/plain")
    await store.tenant("acme").put("mine", b"acme's bytes")
    with serving(store.settings, clock=clock) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            yield client


def requests_on(tenant: str, key: str) -> list[tuple[str, str, dict[str, object]]]:
    """One request per endpoint (and PUT/GET variant) on ``tenant``'s paths."""
    base = wire.tenant_path(tenant)
    path = wire.object_path(tenant, key)
    return [
        ("PUT", path, {"content": b"overwrite"}),
        ("PUT", path, {"headers": {wire.COPY_DIGEST: digest_of(SECRET)}}),
        ("PUT", path, {"content": b"x", "headers": {"if-none-match": "*"}}),
        ("GET", path, {}),
        ("GET", path, {"headers": {"range": "bytes=0-3"}}),
        ("GET", path, {"headers": {"if-none-match": wire.etag(digest_of(SECRET))}}),
        ("HEAD", path, {}),
        ("DELETE", path, {}),
        ("POST", f"{base}/copy", {"json": {"from": key, "to": "stolen"}}),
        ("GET", f"{base}/objects", {"params": {"prefix": key[:1]}}),
        ("POST", f"{base}/digests/missing", {"json": {"digests": [digest_of(SECRET)]}}),
        ("GET", f"{base}/usage", {}),
    ]


def answer(response: httpx.Response) -> tuple[int, bytes, list[tuple[str, str]]]:
    """Everything a response says, less its Date and X-Request-Id (both differ on every answer)."""
    return (
        response.status_code,
        response.content,
        sorted((k, v) for k, v in response.headers.items() if k not in ("date", "x-request-id")),
    )


@pytest.mark.parametrize("scopes", [tokens.SCOPES, ("read",)])
async def test_another_tenants_paths_answer_as_a_tenant_that_does_not_exist(
    store: BlobStore, http: httpx.AsyncClient, scopes: tuple[str, ...]
) -> None:
    """A's token on B's existing, missing and invalid keys, a nonexistent tenant and an invalid name: identical 403s."""
    token = (await tokens.create(store.core, "acme", scopes=scopes)).token
    auth = {"authorization": f"Bearer {token}"}
    targets = [("beta", "k"), ("beta", "absent"), ("beta", "bad\nkey"), ("ghost", "k"), ("Not A Tenant", "k")]
    answers = []
    for tenant, key in targets:
        seen = []
        for method, path, kwargs in requests_on(tenant, key):
            headers = {**auth, **kwargs.pop("headers", {})}  # type: ignore[dict-item]
            response = await http.request(method, path, headers=headers, **kwargs)  # type: ignore[arg-type]
            assert response.status_code == 403, (method, path, response.text)
            seen.append(answer(response))
        answers.append(seen)
    assert all(seen == answers[0] for seen in answers[1:])
    assert await store.tenant("beta").get("k") == SECRET
    assert not await store.tenant("beta").exists("stolen")
    assert [item.key for item in await store.tenant("beta").list()] == ["k"]


async def test_missing_digests_are_per_tenant(store: BlobStore, http: httpx.AsyncClient) -> None:
    """A digest only B holds is 'missing' for A, exactly like a digest nobody holds; A's own is not."""
    token = (await tokens.create(store.core, "acme", scopes=["read"])).token
    probe = [digest_of(SECRET), digest_of(b"nobody's"), digest_of(b"acme's bytes")]
    response = await http.post(
        "/v1/tenants/acme/digests/missing", json={"digests": probe}, headers={"authorization": f"Bearer {token}"}
    )
    assert response.json() == {"missing": probe[:2]}


async def test_put_by_anothers_digest_is_not_found_like_an_unknown_one(
    store: BlobStore, http: httpx.AsyncClient
) -> None:
    """Put-by-digest of B's digest on A's path fails exactly like an unknown digest (404, same text but the digest)."""
    token = (await tokens.create(store.core, "acme", scopes=["write"])).token
    seen = []
    for digest in (digest_of(SECRET), digest_of(b"nobody's")):
        response = await http.put(
            "/v1/tenants/acme/objects/probe",
            headers={"authorization": f"Bearer {token}", wire.COPY_DIGEST: digest},
        )
        status, body, headers = answer(response)
        seen.append(
            (status, body.replace(digest.encode(), b"<digest>"), [h for h in headers if h[0] != "content-length"])
        )
    assert seen[0] == seen[1]
    assert seen[0][0] == 404
    assert not await store.tenant("acme").exists("probe")


async def test_usage_shows_only_the_tenants_own_figures(store: BlobStore, http: httpx.AsyncClient) -> None:
    """/usage reports A's keys and logical bytes, with no figure about bytes shared with B."""
    await store.tenant("acme").put("copy-of-secret", SECRET)
    token = (await tokens.create(store.core, "acme", scopes=["read"])).token
    usage = (await http.get("/v1/tenants/acme/usage", headers={"authorization": f"Bearer {token}"})).json()
    assert usage == {
        "tenant": "acme",
        "objects": 2,
        "logical_bytes": len(b"acme's bytes") + len(SECRET),
        "max_objects": None,
        "max_bytes": None,
        "egress_bytes_this_month": 0,
    }
