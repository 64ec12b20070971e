"""What a newcomer meets first (issue 23), through a real ``blobstore`` process: the report at 80 columns and
a dry-run GC that explains the grace period."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest

from tests.support.cli_helpers import run_process


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def _put(home: Path, tmp_path: Path, tenant: str, key: str, data: bytes) -> None:
    source = tmp_path / f"{tenant}-{key.replace('/', '_')}.bin"
    source.write_bytes(data)
    run_process(["put", tenant, key, str(source)], home=home).ok()


def test_report_fits_80_columns_and_shows_every_number(home: Path, tmp_path: Path) -> None:
    """At COLUMNS=80 the report has no line over 80 characters and no figure cut to an ellipsis."""
    _put(home, tmp_path, "acme", "a", b"a" * 123_456)
    _put(home, tmp_path, "globex-international", "b", b"a" * 123_456)
    text = run_process(["report"], home=home, env={"COLUMNS": "80"}).ok().stdout
    assert max(len(line) for line in text.splitlines()) <= 80, text
    assert "…" not in text
    for figure in ("acme", "globex-international", "123.5 kB", "all 2 tenants", "$0.00"):
        assert figure in text, figure


def test_report_keeps_the_wide_table_where_it_fits(home: Path, tmp_path: Path) -> None:
    """With room for it (a pipe, 200 columns), the report is the one-row-per-tenant table."""
    _put(home, tmp_path, "acme", "a", b"a" * 1000)
    text = run_process(["report"], home=home).ok().stdout
    header = next(line for line in text.splitlines() if "tenant" in line and "logical" in line)
    assert "attributed" in header
    assert "compressed" in header
    assert "egress cost" in header


def test_report_says_all_1_tenant_in_the_singular(home: Path, tmp_path: Path) -> None:
    _put(home, tmp_path, "acme", "a", b"a" * 10)
    text = run_process(["report"], home=home).ok().stdout
    assert re.search(r"^ *all 1 tenant +1 ", text, re.MULTILINE), text


def test_gc_dry_run_shows_what_waits_out_the_grace_period(home: Path, tmp_path: Path) -> None:
    """After a delete within the grace period, a dry run says one blob (and its bytes) waits, and from when it
    becomes reclaimable; the JSON carries the same figures."""
    _put(home, tmp_path, "acme", "k", b"v" * 1000)
    run_process(["rm", "acme", "k"], home=home).ok()
    text = run_process(["gc", "--dry-run"], home=home).ok().stdout
    assert "would reclaim 0 blobs (0 bytes)" in text
    assert "1 unreferenced blob (1.0 kB) waits out the grace period" in text
    assert "reclaimable from " in text
    plan = json.loads(run_process(["gc", "--dry-run", "--json"], home=home).ok().stdout)
    assert (plan["blobs_waiting"], plan["bytes_waiting"]) == (1, 1000)
    assert plan["next_reclaimable_at"] is not None


def test_gc_says_nothing_waits_when_nothing_does(home: Path, tmp_path: Path) -> None:
    _put(home, tmp_path, "acme", "k", b"v" * 1000)
    text = run_process(["gc", "--dry-run"], home=home).ok().stdout
    assert "waits out the grace period" not in text
    plan = json.loads(run_process(["gc", "--dry-run", "--json"], home=home).ok().stdout)
    assert (plan["blobs_waiting"], plan["bytes_waiting"], plan["next_reclaimable_at"]) == (0, 0, None)


def test_gc_counts_in_the_singular(home: Path, tmp_path: Path) -> None:
    _put(home, tmp_path, "acme", "k", b"v" * 1000)
    run_process(["rm", "acme", "k"], home=home).ok()
    text = run_process(["gc", "--dry-run"], home=home, env={"BLOBSTORE_GC_GRACE": "0"}).ok().stdout
    assert "would reclaim 1 blob (1.0 kB)" in text
    assert "1 blobs" not in text


def test_ls_with_a_limit_says_when_more_keys_follow(home: Path, tmp_path: Path) -> None:
    """``ls --limit`` stops early and says so on stderr (human output; --json stays quiet); at the end, no hint."""
    for key in ("a", "b", "c"):
        _put(home, tmp_path, "acme", key, key.encode())
    cut = run_process(["ls", "acme", "--limit", "2"], home=home)
    assert cut.code == 0
    assert [line.split()[-1] for line in cut.stdout.splitlines()] == ["a", "b"]
    assert "more keys follow" in cut.stderr
    run_process(["ls", "acme", "--limit", "3"], home=home).ok()
    run_process(["ls", "acme", "--limit", "2", "--json"], home=home).ok()


def test_export_of_a_prefix_without_keys_fails_and_says_so(home: Path, tmp_path: Path) -> None:
    _put(home, tmp_path, "acme", "uploads/a", b"a")
    run_process(["export", "acme", str(tmp_path / "out"), "--prefix", "nothing/"], home=home).failed(
        "nothing to export", "no keys under 'nothing/'"
    )
    assert not (tmp_path / "out").exists()


def test_put_recursive_stores_files_in_key_order(home: Path, tmp_path: Path) -> None:
    """Files are stored (and printed) in code-point order of their keys, not in directory-walk order."""
    tree = tmp_path / "tree"
    for name in ("z.txt", "a/b.txt", "a/c/d.txt", "B.txt"):
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_bytes(name.encode())
    text = run_process(["put", "acme", "--recursive", str(tree)], home=home).ok().stdout
    stored = [line.split()[1] for line in text.splitlines() if line.startswith("put acme/")]
    assert stored == sorted(stored)
    assert len(stored) == 4


def test_revoking_a_revoked_token_says_it_already_was(home: Path) -> None:
    created = json.loads(run_process(["token", "create", "acme", "--json"], home=home).ok().stdout)
    first = run_process(["token", "revoke", created["id"]], home=home).ok().stdout
    assert first.startswith(f"revoked {created['id']} (acme)")
    again = run_process(["token", "revoke", created["id"]], home=home).ok().stdout
    assert again.startswith(f"{created['id']} (acme) was already revoked at ")


def test_serve_on_a_busy_port_fails_in_one_line(home: Path) -> None:
    """A port another process holds: one line naming the option and the address, exit 1, no uvicorn log."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_process(["serve", "--port", str(port)], home=home)
    done.failed(f"--port: cannot listen on 127.0.0.1:{port}", "in use")


_TOKEN = "bst~acme~0123456789abcdef~" + "a" * 43


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_unreachable_server_is_named_with_the_variable_it_came_from(home: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    run_process(["ls", "acme"], home=home, env={"BLOBSTORE_SERVER_URL": url, "BLOBSTORE_TOKEN": _TOKEN}).failed(
        f"cannot reach the blobstore server at {url}/", "from BLOBSTORE_SERVER_URL", "blobstore serve"
    )
    run_process(["ls", "acme", "--server", url, "--token", _TOKEN], home=home).failed("from --server")
    assert not home.exists()  # remote mode never opens a local store


def test_a_server_url_without_a_scheme_says_what_to_give(home: Path) -> None:
    env = {"BLOBSTORE_SERVER_URL": "127.0.0.1:8080", "BLOBSTORE_TOKEN": _TOKEN}
    run_process(["ls", "acme"], home=home, env=env).failed(
        "BLOBSTORE_SERVER_URL", "'127.0.0.1:8080' is not a server URL", "http://"
    )


def test_a_storage_directory_that_does_not_exist_is_named_as_such(home: Path, tmp_path: Path) -> None:
    """A database that references objects, pointed at a directory that is not there: the error says so."""
    _put(home, tmp_path, "acme", "k", b"v")
    gone = tmp_path / "no-such-dir"
    run_process(["ls", "acme"], home=home, env={"BLOBSTORE_STORAGE_URL": gone.as_uri()}).failed(
        f"the directory {gone} does not exist", "BLOBSTORE_STORAGE_URL"
    )


# --- where the store is, and when a command may create one --------------------------------------------------

_NO_HOME = {"BLOBSTORE_HOME": None}


@pytest.mark.parametrize("command", [["ls", "acme"], ["report"], ["gc", "--dry-run"], ["tenant", "ls"], ["fsck"]])
def test_a_read_only_command_in_an_empty_directory_creates_nothing(tmp_path: Path, command: list[str]) -> None:
    """No store in the directory or its parents: one line saying so and how to point at one; nothing created."""
    empty = tmp_path / "empty"
    empty.mkdir()
    run_process(command, home=tmp_path / "unused", env=_NO_HOME, cwd=empty).failed(
        "no store here", "BLOBSTORE_HOME", "blobstore put"
    )
    assert list(empty.iterdir()) == []


def test_the_first_put_says_where_it_created_the_store_once(tmp_path: Path) -> None:
    source = tmp_path / "value.bin"
    source.write_bytes(b"v")
    work = tmp_path / "work"
    work.mkdir()
    first = run_process(["put", "acme", "k", str(source)], home=tmp_path / "unused", env=_NO_HOME, cwd=work)
    assert first.code == 0
    assert first.stderr == f"blobstore: created a new store: {work / '.blobstore'}\n"
    run_process(["put", "acme", "k2", str(source)], home=tmp_path / "unused", env=_NO_HOME, cwd=work).ok()


def test_a_store_is_found_from_a_subdirectory_as_git_finds_its_repository(tmp_path: Path) -> None:
    source = tmp_path / "value.bin"
    source.write_bytes(b"v")
    project = tmp_path / "project"
    deep = project / "src" / "deep"
    deep.mkdir(parents=True)
    run_process(["put", "acme", "k", str(source)], home=tmp_path / "unused", env=_NO_HOME, cwd=project)
    listed = run_process(["ls", "acme"], home=tmp_path / "unused", env=_NO_HOME, cwd=deep).ok().stdout
    assert listed.split()[-1] == "k"
    assert not (deep / ".blobstore").exists()


def test_a_read_only_command_on_a_missing_home_names_it(tmp_path: Path) -> None:
    home = tmp_path / "nowhere"
    run_process(["ls", "acme"], home=home).failed(f"no store at BLOBSTORE_HOME={home}")
    assert not home.exists()


@pytest.mark.parametrize(
    "command", [["report"], ["tenant", "ls"], ["gc"], ["import", "acme", "."], ["token", "ls"], ["fsck"]]
)
def test_operator_commands_refuse_remote_mode_instead_of_opening_a_local_store(
    tmp_path: Path, command: list[str]
) -> None:
    """With a server configured for the object commands, a command that needs the database says so in one line
    and opens (or creates) nothing."""
    home = tmp_path / "home"
    env = {"BLOBSTORE_SERVER_URL": "http://127.0.0.1:8080", "BLOBSTORE_TOKEN": _TOKEN}
    run_process(command, home=home, env=env).failed("needs the database", "BLOBSTORE_SERVER_URL")
    assert not home.exists()
