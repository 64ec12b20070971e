"""One error tree, one table: every error class lives in blobstore.errors and has one entry (HTTP status, S3
code) from which the server answers and the client maps back; a 403 names the scope the token lacks."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import FastAPI

import blobstore
from blobstore import BlobStore, errors, wire
from blobstore.auth import tokens
from blobstore.client import BlobClient
from blobstore.errors import BlobStoreError
from blobstore.server import problems
from tests.support.live_server import serving, serving_app
from tests.support.stores import FakeClock

#: Modules that run something when imported (the CLI's entry point, Alembic's environment).
_NOT_IMPORTABLE = ("blobstore.__main__", "blobstore._migrations")


def _every_error_class() -> set[type[BlobStoreError]]:
    """Every BlobStoreError subclass defined anywhere in the blobstore package (every module imported first)."""
    for module in pkgutil.walk_packages(blobstore.__path__, "blobstore."):
        if not module.name.startswith(_NOT_IMPORTABLE):
            importlib.import_module(module.name)

    def below(cls: type[BlobStoreError]) -> Iterator[type[BlobStoreError]]:
        for sub in cls.__subclasses__():
            yield sub
            yield from below(sub)

    return {BlobStoreError} | {cls for cls in below(BlobStoreError) if cls.__module__.startswith("blobstore.")}


def test_every_error_class_lives_in_errors_and_has_an_entry() -> None:
    """A class added anywhere in the package without moving it to blobstore.errors or giving it an entry fails."""
    found = _every_error_class()
    assert {cls for cls in found if cls.__module__ != "blobstore.errors"} == set()
    assert found == set(errors.STATUS)


def test_every_error_inherits_a_builtin_or_says_why_not() -> None:
    """Each error is also the builtin it resembles, where one fits (STYLE.md "Errors")."""
    without_builtin = {cls for cls in errors.STATUS if cls.__bases__ in ((Exception,), (BlobStoreError,))}
    assert without_builtin == {BlobStoreError, errors.PreconditionFailed, errors.QuotaExceeded}
    assert issubclass(errors.ObjectMissing, FileNotFoundError)
    assert issubclass(errors.Forbidden, PermissionError)
    assert issubclass(errors.RangeNotSatisfiable, ValueError)
    assert [cls.__name__ for cls in errors.STATUS if cls.retryable] == ["StorageUnavailable"]


def test_entries_hold_a_status_and_an_s3_code() -> None:
    """Subclasses without an entry of their own would answer as their parent; every entry is a 4xx/5xx and a code."""
    assert errors.STATUS[errors.NotFound] == errors.ErrorStatus(404, "NoSuchKey")
    assert errors.STATUS[errors.Forbidden].status == 403
    for cls, entry in errors.STATUS.items():
        assert 400 <= entry.status <= 599, cls
        assert entry.s3_code.isalnum(), cls


@pytest.mark.parametrize("cls", sorted(errors.STATUS, key=lambda cls: cls.__name__), ids=lambda cls: cls.__name__)
def test_the_server_answers_each_class_with_its_entry(cls: type[BlobStoreError]) -> None:
    """problem_response takes the status from the table and names the class as the code."""
    response = problems.problem_response(cls("boom"))
    assert response.status_code == errors.STATUS[cls].status
    assert response.headers[wire.ERROR_CODE] == cls.__name__


def _raising_app() -> FastAPI:
    """An app whose listing raises the error class named by ``prefix``, answered by the server's problem handlers."""
    app = FastAPI()
    problems.install(app)
    by_name = {cls.__name__: cls for cls in errors.STATUS}

    @app.get("/v1/tenants/{tenant}/objects")
    async def raising(prefix: str) -> None:
        raise by_name[prefix](f"raised {prefix}")

    return app


@pytest.fixture(scope="module")
def raising_url() -> Iterator[str]:
    with serving_app(_raising_app()) as url:
        yield url


async def test_the_client_raises_the_class_the_server_answered(raising_url: str) -> None:
    """Over a real server, each class in the table comes back to BlobClient as exactly that class."""
    async with BlobClient(raising_url, f"bst~acme~{'0' * 16}~{'x' * 43}") as client:
        for cls in errors.STATUS:
            with pytest.raises(BlobStoreError) as raised:
                await client.list(cls.__name__)
            assert type(raised.value) is cls


# --- 403 names what is missing ---------------------------------------------------------------------


@pytest.fixture
async def http(open_store: object, clock: FakeClock) -> AsyncIterator[tuple[BlobStore, httpx.AsyncClient]]:
    store: BlobStore = await open_store("sqlite-local")  # type: ignore[operator]
    await store.tenant("beta").put("k", b"beta's")
    with serving(store.settings, clock=clock) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            yield store, client


async def test_a_403_names_the_scope_the_token_lacks(http: tuple[BlobStore, httpx.AsyncClient]) -> None:
    """A read-only token's delete is refused naming 'delete', its put naming 'write', its signing naming 'sign'."""
    store, client = http
    auth = {"authorization": f"Bearer {(await tokens.create(store.core, 'acme', scopes=['read'])).token}"}
    expected = [
        ("DELETE", "objects/k", {}, "this token lacks the 'delete' scope"),
        ("PUT", "objects/k", {"content": b"x"}, "this token lacks the 'write' scope"),
        ("POST", "signed-urls", {"json": {"method": "GET", "key": "k"}}, "this token lacks the 'sign' scope"),
    ]
    for method, path, kwargs, detail in expected:
        response = await client.request(method, f"/v1/tenants/acme/{path}", headers=auth, **kwargs)  # type: ignore[arg-type]
        assert (response.status_code, response.json()["code"], response.json()["detail"]) == (403, "Forbidden", detail)


async def test_a_403_for_another_tenant_names_no_scope_and_nothing_of_that_tenant(
    http: tuple[BlobStore, httpx.AsyncClient],
) -> None:
    """On an existing and a nonexistent tenant alike, a token of another tenant hears only that it is not theirs."""
    store, client = http
    auth = {"authorization": f"Bearer {(await tokens.create(store.core, 'acme', scopes=['read'])).token}"}
    details = {
        (await client.delete(f"/v1/tenants/{tenant}/objects/k", headers=auth)).json()["detail"]
        for tenant in ("beta", "ghost")
    }
    assert details == {"this token is not for this tenant"}


async def test_the_mounted_dependency_names_the_scope_the_token_lacks(
    http: tuple[BlobStore, httpx.AsyncClient],
) -> None:
    """blobstore.fastapi's dependency refuses a token without its scope with the same words as the API."""
    from fastapi import Depends

    from blobstore import Tenant
    from blobstore.fastapi import mount

    store, _ = http
    host = FastAPI()
    deleter = Depends(mount(host, prefix="/storage", store=store).tenant("delete"))

    @host.get("/mine")
    async def mine(tenant: Tenant = deleter) -> str:
        return tenant.name

    writer = (await tokens.create(store.core, "acme", scopes=["write"])).token
    with serving_app(host) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            response = await client.get("/mine", headers={"authorization": f"Bearer {writer}"})
    assert (response.status_code, response.json()["detail"]) == (403, "this token lacks the 'delete' scope")
