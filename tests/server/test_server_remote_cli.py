"""The remote CLI: with BLOBSTORE_SERVER_URL and BLOBSTORE_TOKEN, put get stat ls rm cp go through a server
and print exactly what they print on a local store (output, --json, errors and exit codes), one script run
in both modes side by side."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from blobstore import BlobStore, Settings
from tests.support.cli_helpers import Run, invoke, new_store
from tests.support.live_server import serving
from tests.support.stores import FakeClock

DATA = bytes(range(256)) * 40 + b"\x00\r\n\xff"
_TIMES = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(\+00:00|Z| UTC)?")


def script(files: Path, out: Path) -> list[tuple[list[str], bytes | None, bool]]:
    """Every object command, successes and failures (the flag: should it succeed), each step depending on
    the ones before."""
    site, data = str(files / "site"), str(files / "a.bin")
    return [
        (["put", "acme", "docs/a.bin", data], None, True),
        (["put", "acme", "docs/b.bin", data, "--meta", "owner=ann", "--content-type", "x/y"], None, True),
        (["put", "--json", "acme", "docs/c.txt", "-"], b"from stdin\n", True),
        (["put", "acme", "docs/b.bin", data, "--if-absent"], None, False),
        (["put", "acme", "--recursive", site, "--prefix", "site/"], None, True),
        (["put", "--json", "acme", "--recursive", site, "--prefix", "again/"], None, True),
        (["stat", "acme", "docs/b.bin"], None, True),
        (["stat", "--json", "acme", "docs/b.bin"], None, True),
        (["stat", "acme", "docs/missing"], None, False),
        (["ls", "acme"], None, True),
        (["ls", "--json", "acme", "docs/"], None, True),
        (["ls", "acme", "site/", "--limit", "1"], None, True),
        (["get", "acme", "docs/a.bin"], None, True),
        (["get", "acme", "docs/a.bin", "-o", str(out), "--json"], None, True),
        (["get", "acme", "docs/missing"], None, False),
        (["cp", "acme", "docs/a.bin", "docs/d.bin"], None, True),
        (["cp", "--json", "acme", "docs/a.bin", "docs/d.bin", "--if-absent"], None, False),
        (["cp", "acme", "docs/missing", "docs/e.bin"], None, False),
        (["rm", "acme", "docs/b.bin", "docs/missing"], None, False),
        (["rm", "--json", "acme", "docs/c.txt", "site/index.html"], None, True),
        (["ls", "--json", "acme"], None, True),
        (["get", "acme", "docs/d.bin"], None, True),
    ]


def deployment_env(settings: Settings) -> dict[str, str | None]:
    """The environment that names the deployment of ``settings`` to a local-mode command."""
    return {
        "BLOBSTORE_DATABASE_URL": settings.database_url,
        "BLOBSTORE_STORAGE_URL": settings.storage_url,
        "BLOBSTORE_S3_ENDPOINT_URL": settings.s3_endpoint_url,
    }


def token_of(settings: Settings, home: Path) -> str:
    """A new all-scopes token of tenant acme on that deployment (made as an operator would, with the CLI)."""
    create = ["token", "create", "acme", "--scope", "read,write,delete,sign"]
    return invoke(create, home=home, env=deployment_env(settings)).ok().stdout.strip()


def altered(token: str) -> str:
    """The token with its last character changed."""
    return token[:-1] + ("A" if token[-1] != "A" else "B")


def normalized(run: Run) -> tuple[int, bytes, str]:
    """A run with its timestamps blanked (the two stores store at different instants)."""
    return run.code, _TIMES.sub("<time>", run.stdout_bytes.decode("latin-1")).encode("latin-1"), run.stderr


@pytest.fixture
def files(tmp_path: Path) -> Path:
    root = tmp_path / "files"
    (root / "site" / "css").mkdir(parents=True)
    (root / "a.bin").write_bytes(DATA)
    (root / "site" / "index.html").write_text("<h1>hi</h1>")
    (root / "site" / "css" / "main.css").write_text("h1 {}")
    return root


def test_every_object_command_prints_the_same_in_both_modes(
    store: BlobStore, clock: FakeClock, files: Path, tmp_path: Path
) -> None:
    """Local mode on an embedded store and remote mode on a server of the test's deployment: same answers."""
    token = token_of(store.settings, tmp_path / "operator")
    local_home, remote_home = new_store(tmp_path / "local"), tmp_path / "remote"
    out = tmp_path / "out.bin"
    with serving(store.settings, clock=clock) as url:
        remote_env: dict[str, str | None] = {"BLOBSTORE_SERVER_URL": url, "BLOBSTORE_TOKEN": token}
        for args, stdin, succeeds in script(files, out):
            local = invoke(args, home=local_home, input=stdin)
            assert (local.code == 0) is succeeds, (args, local.stderr)
            out.unlink(missing_ok=True)
            remote = invoke(args, home=remote_home, input=stdin, env=remote_env)
            assert normalized(remote) == normalized(local), args
            out.unlink(missing_ok=True)
    assert remote.stdout_bytes == DATA
    assert not remote_home.exists(), "remote mode opened a local store"


@pytest.mark.parametrize(
    ("env", "mention"),
    [
        (lambda url, token: {"BLOBSTORE_SERVER_URL": url}, "BLOBSTORE_TOKEN is not set"),
        (lambda url, token: {"BLOBSTORE_TOKEN": token}, "BLOBSTORE_SERVER_URL is not set"),
        (lambda url, token: {"BLOBSTORE_SERVER_URL": url, "BLOBSTORE_TOKEN": token}, "not 'globex'"),
        (lambda url, token: {"BLOBSTORE_SERVER_URL": url, "BLOBSTORE_TOKEN": altered(token)}, "not valid"),
    ],
)
def test_remote_mode_refuses_a_missing_setting_or_a_token_of_another_tenant(
    store: BlobStore,
    clock: FakeClock,
    tmp_path: Path,
    env: Callable[[str, str], dict[str, str | None]],
    mention: str,
) -> None:
    """Half a configuration, a token of another tenant or a bad token: one error line, nothing done."""
    token = token_of(store.settings, tmp_path / "operator")
    tenant = "globex" if mention == "not 'globex'" else "acme"
    with serving(store.settings, clock=clock) as url:
        invoke(["ls", tenant], home=tmp_path / "cli", env=env(url, token)).failed(mention)
    assert not (tmp_path / "cli").exists()


def test_server_and_token_options_override_the_environment(
    store: BlobStore, clock: FakeClock, files: Path, tmp_path: Path
) -> None:
    """--server and --token win over BLOBSTORE_SERVER_URL / BLOBSTORE_TOKEN (here naming nothing useful)."""
    token = token_of(store.settings, tmp_path / "operator")
    stale = {"BLOBSTORE_SERVER_URL": "http://127.0.0.1:9", "BLOBSTORE_TOKEN": "bst~acme~0000000000000000~x"}
    with serving(store.settings, clock=clock) as url:
        flags = ["--server", url, "--token", token]
        invoke(["put", "acme", "k", str(files / "a.bin"), *flags], home=tmp_path / "cli", env=stale).ok()
        listed = invoke(["ls", "--json", "acme", *flags], home=tmp_path / "cli", env=stale).ok().stdout
    assert '"key": "k"' in listed
    assert not (tmp_path / "cli").exists()
