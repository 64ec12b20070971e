"""The ``blobstore`` command line, driven like a user would: real files, real processes where it matters.

Most tests run the CLI in-process (click's CliRunner) on the embedded default
(SQLite + a local directory under ``BLOBSTORE_HOME``); the error paths, stdin,
Ctrl-C, broken pipes and progress bars run as real processes. A round trip also
runs against PostgreSQL + S3.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pty
import signal
import subprocess
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from importlib.metadata import version
from pathlib import Path
from typing import IO

import click
import pytest

import blobstore.cli.objects
import blobstore.store
from blobstore import Settings
from blobstore.cli import cli
from tests.support.cli_helpers import Run, finish, invoke, listed_commands, new_store, run_process, spawn
from tests.support.digests import digest_of
from tests.support.s3_server import S3Endpoint
from tests.support.servers import postgres_server, scratch_database

DATA = bytes(range(256)) * 40 + b"\x00\r\n\xff"  # binary: NULs, CR/LF, high bytes


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """The home of a new, empty embedded store."""
    return new_store(tmp_path / "home")


@pytest.fixture
def bs(home: Path) -> Callable[..., Run]:
    """Run ``blobstore ARGS`` in-process against the embedded default store in ``home``."""

    def run(*args: str, input: bytes | None = None, env: dict[str, str | None] | None = None) -> Run:
        return invoke(args, home=home, input=input, env=env)

    return run


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """A directory of input files: ``data.bin`` (binary), ``note.txt``, and a tree under ``site/``."""
    root = tmp_path / "files"
    (root / "site" / "css").mkdir(parents=True)
    (root / "data.bin").write_bytes(DATA)
    (root / "note.txt").write_text("hello\n")
    (root / "site" / "index.html").write_text("<h1>hi</h1>")
    (root / "site" / "css" / "main.css").write_text("h1 {}")
    (root / "site" / "link.html").symlink_to(root / "site" / "index.html")
    return root


# --- help and version ----------------------------------------------------------------------------


def test_help_lists_every_command_with_a_one_line_description(bs: Callable[..., Run]) -> None:
    """``--help`` lists every command, each with a description."""
    listed = listed_commands(bs("--help").ok().stdout)
    assert list(listed) == [
        *("put", "get", "stat", "ls", "rm", "cp", "import", "export"),
        *("gc", "fsck", "compact", "lifecycle", "report", "tenant", "token", "access-key", "signing-key"),
        *("serve", "spool", "db"),
    ]
    assert all(len(description) > 10 and not description.endswith("...") for description in listed.values())


@pytest.mark.parametrize("width", [50, 80, 120])
def test_help_never_cuts_a_description_short(width: int) -> None:
    """At any terminal width each command's description is the whole first sentence of its short help or
    docstring: wrapped, never cut short with "...", however long the longest command name."""
    listed = listed_commands(cli.get_help(click.Context(cli, info_name="blobstore", terminal_width=width)))
    for name, description in listed.items():
        command = cli.commands[name]
        paragraph = " ".join((command.short_help or command.help or "").split("\n\n")[0].split())
        assert description == paragraph.split(". ")[0].removesuffix(".") + ".", name


def test_a_bare_command_prints_its_help(bs: Callable[..., Run]) -> None:
    """``blobstore`` and ``blobstore db`` without a command print their help, not an error line."""
    assert "Commands:" in bs().stderr
    assert "upgrade" in bs("db").stderr


def test_version_prints_the_package_version(bs: Callable[..., Run]) -> None:
    """``--version`` prints the installed package version."""
    assert bs("--version").ok().stdout == f"blobstore {version('blobstore')}\n"


# --- put and get ---------------------------------------------------------------------------------


def test_put_file_then_get_to_stdout_returns_the_same_bytes(bs: Callable[..., Run], files: Path) -> None:
    """A file put and read back to stdout is byte-identical; put prints one human line."""
    line = bs("put", "acme", "blobs/data", str(files / "data.bin")).ok().stdout
    assert line.startswith("put acme/blobs/data  10.2 kB  digest=" + digest_of(DATA)[:16])
    assert line.count("\n") == 1
    assert bs("get", "acme", "blobs/data").ok().stdout_bytes == DATA


def test_put_json_prints_the_stored_blob(bs: Callable[..., Run], files: Path) -> None:
    """``put --json`` prints tenant, key, digest, size, deduplicated, content type and metadata."""
    args = ["put", "acme", "k", str(files / "data.bin"), "--json", "--content-type", "application/x-test"]
    result = json.loads(bs(*args, "--meta", "user=42", "--meta", "tag=a=b").ok().stdout)
    assert result["tenant"] == "acme"
    assert result["key"] == "k"
    assert result["digest"] == digest_of(DATA)
    assert result["size"] == len(DATA)
    assert result["deduplicated"] is False
    assert result["content_type"] == "application/x-test"
    assert result["metadata"] == {"user": "42", "tag": "a=b"}
    datetime.fromisoformat(result["created_at"])


def test_put_guesses_the_content_type_from_the_file_name(bs: Callable[..., Run], files: Path) -> None:
    """Without ``--content-type`` a file's type is guessed from its name."""
    bs("put", "acme", "note", str(files / "note.txt")).ok()
    assert json.loads(bs("stat", "acme", "note", "--json").ok().stdout)["content_type"] == "text/plain"


def test_deduplicated_is_reported_per_tenant(bs: Callable[..., Run], files: Path) -> None:
    """The same bytes under two tenants are new to each; again under the same tenant they are deduplicated."""
    path = str(files / "data.bin")

    def deduplicated(tenant: str, key: str) -> bool:
        return bool(json.loads(bs("put", tenant, key, path, "--json").ok().stdout)["deduplicated"])

    assert deduplicated("acme", "a") is False
    assert deduplicated("globex", "a") is False
    assert deduplicated("acme", "b") is True
    assert bs("put", "acme", "c", path).ok().stdout.rstrip().endswith("(deduplicated)")


def test_put_reads_piped_stdin_without_a_file_argument(bs: Callable[..., Run]) -> None:
    """``put TENANT KEY`` with stdin piped stores stdin, like ``-``."""
    bs("put", "acme", "piped", input=b"from a pipe").ok()
    assert bs("get", "acme", "piped").ok().stdout_bytes == b"from a pipe"


def test_put_if_absent_refuses_an_existing_key(bs: Callable[..., Run], files: Path) -> None:
    """``put --if-absent`` on an existing key fails with one line and keeps the old value."""
    bs("put", "acme", "k", str(files / "note.txt")).ok()
    bs("put", "acme", "k", str(files / "data.bin"), "--if-absent").failed("already exists")
    assert bs("get", "acme", "k").ok().stdout_bytes == b"hello\n"


def test_put_recursive_stores_every_regular_file_under_the_prefix(bs: Callable[..., Run], files: Path) -> None:
    """``put --recursive DIR --prefix P`` stores key P + relative posix path per regular file, skipping symlinks."""
    result = json.loads(bs("put", "acme", "--recursive", str(files / "site"), "--prefix", "www/", "--json").ok().stdout)
    assert [item["key"] for item in result] == ["www/css/main.css", "www/index.html"]  # in key order
    assert {item["size"] for item in result} == {11, 5}
    assert bs("get", "acme", "www/css/main.css").ok().stdout == "h1 {}"
    assert bs("ls", "acme").ok().stdout.count("\n") == 2


def test_put_recursive_human_output_ends_with_a_summary(bs: Callable[..., Run], files: Path) -> None:
    """Human ``put --recursive`` prints a line per file and a summary."""
    lines = bs("put", "acme", "-r", str(files / "site")).ok().stdout.splitlines()
    assert lines[0].startswith("put acme/css/main.css")
    assert lines[-1] == "put 2 files, 16 bytes (0 deduplicated)"


def test_put_recursive_rejects_a_bad_key_before_storing_anything(bs: Callable[..., Run], files: Path) -> None:
    """A file whose key would be invalid fails the whole recursive put up front: nothing is stored."""
    (files / "site" / "bad\x01name").write_text("x")
    bs("put", "acme", "--recursive", str(files / "site")).failed("invalid key")
    assert bs("ls", "acme", "--json").ok().stdout.strip() == "[]"


def test_get_to_a_file_writes_the_bytes_and_reports_the_path(bs: Callable[..., Run], files: Path) -> None:
    """``get -o FILE --json`` writes the value to FILE and prints the key's details plus the path."""
    bs("put", "acme", "k", str(files / "data.bin")).ok()
    target = files / "out.bin"
    result = json.loads(bs("get", "acme", "k", "-o", str(target), "--json").ok().stdout)
    assert target.read_bytes() == DATA
    assert (result["digest"], result["size"], result["path"]) == (digest_of(DATA), len(DATA), str(target))
    assert bs("get", "acme", "k", "-o", str(target)).ok().stdout.startswith(f"get acme/k -> {target}")


def test_get_of_a_missing_key_leaves_the_output_file_untouched(bs: Callable[..., Run], files: Path) -> None:
    """A failed ``get -o FILE`` neither truncates FILE nor leaves a partial file behind."""
    target = files / "keep.txt"
    target.write_text("precious")
    bs("get", "acme", "nope", "-o", str(target)).failed("no such key")
    assert target.read_text() == "precious"
    assert sorted(p.name for p in files.iterdir()) == ["data.bin", "keep.txt", "note.txt", "site"]


def test_get_of_corrupted_bytes_fails_and_writes_no_file(bs: Callable[..., Run], files: Path, home: Path) -> None:
    """Bytes that no longer match their digest fail ``get`` with one line; ``-o FILE`` is never created."""
    bs("put", "acme", "k", str(files / "note.txt")).ok()
    [stored] = [path for path in (home / "blobs" / "data").rglob("*") if path.is_file()]
    stored.chmod(0o644)
    stored.write_bytes(b"HELLO\n")
    bs("get", "acme", "k", "-o", str(files / "out.txt")).failed("corrupted")
    assert not (files / "out.txt").exists()
    assert sorted(p.name for p in files.iterdir()) == ["data.bin", "note.txt", "site"]
    bs("get", "acme", "k").failed("corrupted")


# --- stat, ls, rm, cp ----------------------------------------------------------------------------


def test_stat_prints_the_key_details(bs: Callable[..., Run], files: Path) -> None:
    """``stat`` prints aligned fields; ``stat --json`` has key, digest, size, content_type, created_at, metadata."""
    bs("put", "acme", "k", str(files / "data.bin"), "--meta", "user=42").ok()
    result = json.loads(bs("stat", "acme", "k", "--json").ok().stdout)
    assert (result["key"], result["digest"], result["size"]) == ("k", digest_of(DATA), len(DATA))
    assert result["content_type"] == "application/octet-stream"  # guessed from .bin
    assert result["metadata"] == {"user": "42"}
    datetime.fromisoformat(result["created_at"])
    human = bs("stat", "acme", "k").ok().stdout
    assert f"digest        {digest_of(DATA)}\n" in human
    assert "size          10.2 kB (10244 bytes)\n" in human
    assert "meta user     42\n" in human


@pytest.fixture
def five_keys(bs: Callable[..., Run], tmp_path: Path) -> list[str]:
    """Tenant acme holding a/1, a/2, a/3, b/1, b/2."""
    tree = tmp_path / "tree"
    keys = ["a/1", "a/2", "a/3", "b/1", "b/2"]
    for key in keys:
        (tree / key).parent.mkdir(parents=True, exist_ok=True)
        (tree / key).write_text(key)
    bs("put", "acme", "--recursive", str(tree)).ok()
    return keys


def test_ls_follows_pages_until_the_limit_or_the_end(
    bs: Callable[..., Run], five_keys: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ls`` walks every page by default; ``--limit N`` stops after N keys; PREFIX filters literally."""
    monkeypatch.setattr(blobstore.cli.objects, "LIST_PAGE", 2)

    def keys(*args: str) -> list[str]:
        return [item["key"] for item in json.loads(bs("ls", "acme", *args, "--json").ok().stdout)]

    assert keys() == five_keys
    assert keys("--limit", "3") == five_keys[:3]
    assert keys("--limit", "100") == five_keys
    assert keys("a/") == ["a/1", "a/2", "a/3"]
    assert keys("b/", "--limit", "1") == ["b/1"]
    assert keys("c") == []


def test_ls_json_entries_have_the_documented_fields(bs: Callable[..., Run], five_keys: list[str]) -> None:
    """Each ``ls --json`` entry has key, digest, size, content_type and created_at."""
    entries = json.loads(bs("ls", "acme", "--json").ok().stdout)
    assert len(entries) == len(five_keys)
    for entry in entries:
        assert {"key", "digest", "size", "content_type", "created_at"} <= set(entry)
        assert entry["digest"] == digest_of(entry["key"].encode())


def test_ls_human_output_is_one_column_line_per_key(bs: Callable[..., Run], five_keys: list[str]) -> None:
    """Human ``ls`` prints created, size and key per line, key last."""
    lines = bs("ls", "acme", "a/").ok().stdout.splitlines()
    assert [line.rsplit("  ", 1)[1] for line in lines] == ["a/1", "a/2", "a/3"]
    assert all(" 3 bytes  " in line for line in lines)
    assert bs("ls", "nobody").ok().stdout == ""


def test_rm_deletes_and_fails_naming_the_missing_keys(bs: Callable[..., Run], five_keys: list[str]) -> None:
    """``rm`` deletes what exists, then exits 1 with one line naming every key that did not exist."""
    result = bs("rm", "acme", "a/1", "zz", "a/2", "yy").failed("'zz'", "'yy'")
    assert result.stdout == "deleted acme/a/1\ndeleted acme/a/2\n"
    assert "a/1" not in bs("ls", "acme").ok().stdout


def test_rm_of_existing_keys_succeeds_and_reports_json(bs: Callable[..., Run], five_keys: list[str]) -> None:
    """``rm --json`` prints one entry per key with ``deleted``; all existed, so it exits 0."""
    result = json.loads(bs("rm", "acme", "b/1", "b/2", "--json").ok().stdout)
    assert result == [
        {"tenant": "acme", "key": "b/1", "deleted": True},
        {"tenant": "acme", "key": "b/2", "deleted": True},
    ]
    assert json.loads(bs("rm", "acme", "b/1", "--json").failed("'b/1'").stdout)[0]["deleted"] is False


def test_cp_makes_another_key_for_the_same_bytes(bs: Callable[..., Run], files: Path) -> None:
    """``cp`` makes DST with SRC's digest and bytes; SRC stays; ``--if-absent`` refuses an existing DST."""
    bs("put", "acme", "src", str(files / "data.bin")).ok()
    result = json.loads(bs("cp", "acme", "src", "dst", "--json").ok().stdout)
    assert (result["key"], result["digest"]) == ("dst", digest_of(DATA))
    assert bs("get", "acme", "dst").ok().stdout_bytes == DATA
    assert bs("cp", "acme", "src", "dst2").ok().stdout.startswith("cp acme/src -> acme/dst2  10.2 kB")
    bs("cp", "acme", "src", "dst", "--if-absent").failed("already exists")


def test_common_options_work_before_the_command_name(bs: Callable[..., Run], files: Path, tmp_path: Path) -> None:
    """``--db``/``--storage``/``--json`` are accepted on the group too and override the environment."""
    db = f"sqlite+aiosqlite:///{tmp_path / 'other.db'}"
    storage = (tmp_path / "other-blobs").as_uri()
    bs("--db", db, "--storage", storage, "put", "acme", "k", str(files / "note.txt")).ok()
    assert json.loads(bs("--json", "ls", "acme", "--db", db, "--storage", storage).ok().stdout)[0]["key"] == "k"
    assert bs("ls", "acme").ok().stdout == ""  # the default store did not get it
    assert (tmp_path / "other.db").exists()


# --- db upgrade ----------------------------------------------------------------------------------


def test_db_upgrade_on_sqlite_migrates_once(tmp_path: Path) -> None:
    """``db upgrade`` migrates a fresh SQLite database, then reports it is already up to date."""
    home = tmp_path / "fresh"
    assert json.loads(invoke(["db", "upgrade", "--json"], home=home).ok().stdout)["upgraded"] is True
    assert (home / "blobstore.db").exists()
    assert invoke(["db", "upgrade"], home=home).ok().stdout.startswith("already up to date: sqlite+aiosqlite:///")


def test_db_upgrade_migrates_a_fresh_postgres_database(
    postgres_url: str, bs: Callable[..., Run], tmp_path: Path
) -> None:
    """On an empty PostgreSQL database commands ask for ``db upgrade``; after it they work."""
    with postgres_server() as admin_url, scratch_database(admin_url) as url:
        storage = (tmp_path / "pg-blobs").as_uri()
        bs("ls", "acme", "--db", url, "--storage", storage).failed("blobstore db upgrade")
        assert bs("db", "upgrade", "--db", url).ok().stdout.startswith("upgraded postgresql+asyncpg://")
        assert json.loads(bs("db", "upgrade", "--db", url, "--json").ok().stdout)["upgraded"] is False
        assert bs("ls", "acme", "--db", url, "--storage", storage).ok().stdout == ""


# --- errors: one line, never a traceback ---------------------------------------------------------


def test_usage_errors_are_one_line_with_exit_2(bs: Callable[..., Run], files: Path) -> None:
    """Missing arguments, unknown commands and bad option values exit 2 with one line naming the help."""
    bs("put").failed("Missing argument 'TENANT'", "blobstore put --help", code=2)
    bs("put", "acme").failed("KEY", code=2)
    bs("frobnicate").failed("No such command", code=2)
    bs("ls", "acme", "--limit", "0").failed("--limit", code=2)
    bs("put", "acme", "k", str(files / "note.txt"), "--meta", "novalue").failed("NAME=VALUE", code=2)
    bs("put", "acme", "k", "--recursive", str(files)).failed("--recursive", code=2)
    bs("get", "acme", "k", "--json").failed("-o FILE", code=2)


def test_file_errors_are_one_line(bs: Callable[..., Run], files: Path) -> None:
    """Unusable input and output paths fail with one line naming the path."""
    bs("put", "acme", "-r", str(files / "note.txt")).failed("not a directory")
    bs("put", "acme", "-r", str(files / "nothing")).failed("no such directory")
    bs("put", "acme", "k", str(files / "note.txt")).ok()
    bs("get", "acme", "k", "-o", str(files / "missing-dir" / "x")).failed("cannot write", "missing-dir")
    bs("get", "acme", "k", "-o", str(files)).failed("is a directory")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_an_unreadable_file_is_one_line(bs: Callable[..., Run], files: Path) -> None:
    """A file put cannot read fails with one line, and nothing is stored."""
    path = files / "secret"
    path.write_text("x")
    path.chmod(0)
    bs("put", "acme", "k", str(path)).failed("cannot read")


def test_unexpected_exceptions_are_one_line_internal_errors(
    bs: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug surfaces as one ``internal error`` line with a hint; BLOBSTORE_DEBUG=1 adds the traceback."""

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(blobstore.store.BlobStore, "open", broken)
    bs("ls", "acme").failed("RuntimeError: boom second line", "BLOBSTORE_DEBUG=1", prefix="blobstore: internal error:")
    debug = bs("ls", "acme", env={"BLOBSTORE_DEBUG": "1"})
    assert debug.code == 1
    assert "Traceback" in debug.stderr
    assert debug.stderr.splitlines()[-1].startswith("blobstore: internal error: RuntimeError")


@dataclass(frozen=True)
class BadInput:
    """A command line that must fail: exit ``code``, one stderr line containing every word of ``mentions``."""

    name: str
    args: list[str]
    mentions: list[str]
    env: dict[str, str | None] = field(default_factory=dict)
    code: int = 1
    #: Also run as a real process (one case per layer that can fail: arguments, settings, opening, the API, click).
    in_a_process: bool = False

    def argv(self, files: Path) -> list[str]:
        return [arg.format(files=files) for arg in self.args]


BAD_INPUTS = [
    BadInput("bad-tenant", ["put", "Bad!", "k", "{files}/note.txt"], ["invalid tenant", "'Bad!'"], in_a_process=True),
    BadInput("control-key", ["put", "acme", "bell\x07", "{files}/note.txt"], ["invalid key", "control character"]),
    BadInput("long-key", ["get", "acme", "x" * 1089], ["invalid key", "1-1088 bytes"]),
    BadInput("bad-prefix", ["ls", "acme", "a\x00"], ["invalid prefix"]),
    BadInput("missing-file", ["put", "acme", "k", "{files}/absent"], ["no such file", "absent"], in_a_process=True),
    BadInput("directory-as-file", ["put", "acme", "k", "{files}/site"], ["not a regular file"]),
    BadInput("get-missing-key", ["get", "acme", "nope"], ["no such key", "'nope'"], in_a_process=True),
    BadInput("stat-missing-key", ["stat", "acme", "nope"], ["no such key", "'nope'"]),
    BadInput("cp-missing-key", ["cp", "acme", "nope", "dst"], ["no such key", "'nope'"]),
    BadInput("rm-missing-key", ["rm", "acme", "nope"], ["no such key", "'nope'"]),
    BadInput(
        "unreachable-database",
        ["ls", "acme", "--db", "postgresql+asyncpg://postgres@127.0.0.1:1/x"],
        ["BLOBSTORE_DATABASE_URL", "cannot connect"],
        in_a_process=True,
    ),
    BadInput("unsupported-database", ["ls", "acme", "--db", "mysql://x/y"], ["BLOBSTORE_DATABASE_URL", "mysql"]),
    BadInput(
        "unknown-storage-scheme",
        ["ls", "acme", "--storage", "ftp://x"],
        ["BLOBSTORE_STORAGE_URL", "'ftp'"],
    ),
    BadInput(
        "bad-dedup-scope",
        ["ls", "acme"],
        ["BLOBSTORE_DEDUP_SCOPE", "'bogus'"],
        env={"BLOBSTORE_DEDUP_SCOPE": "bogus"},
        in_a_process=True,
    ),
    BadInput("bad-gc-grace", ["ls", "acme"], ["BLOBSTORE_GC_GRACE"], env={"BLOBSTORE_GC_GRACE": "soon"}),
    BadInput(
        "db-upgrade-uncreatable-sqlite",
        ["db", "upgrade", "--db", "sqlite:///{files}/note.txt/x.db"],
        ["BLOBSTORE_DATABASE_URL", "cannot create"],
    ),
    BadInput("usage-error", ["cp", "acme", "only-src"], ["Missing argument 'DST'"], code=2, in_a_process=True),
]


@pytest.mark.parametrize("case", BAD_INPUTS, ids=lambda case: case.name)
def test_bad_input_is_one_line_on_stderr(bs: Callable[..., Run], files: Path, case: BadInput) -> None:
    """Each bad input exits non-zero (2 for usage) with exactly one ``blobstore: error:`` line, changing nothing."""
    assert bs(*case.argv(files), env=case.env).failed(*case.mentions, code=case.code).stdout == ""
    assert bs("ls", "acme").ok().stdout == ""


@pytest.fixture(scope="module")
def process_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Run]]:
    """The ``in_a_process`` BAD_INPUTS, each run as a real process, all started at once on one ready store."""
    root = tmp_path_factory.mktemp("cli-errors")
    files, home = root / "files", root / "home"
    (files / "site").mkdir(parents=True)
    (files / "note.txt").write_text("hello\n")
    new_store(home)  # migrated before processes share it
    started = {case.name: spawn(case.argv(files), home=home, env=case.env) for case in BAD_INPUTS if case.in_a_process}
    try:
        yield {name: finish(process) for name, process in started.items()}
    finally:
        for process in started.values():
            process.kill()
            process.wait()


@pytest.mark.parametrize("case", [case for case in BAD_INPUTS if case.in_a_process], ids=lambda case: case.name)
def test_bad_input_in_a_real_process_is_one_line_on_stderr(process_runs: dict[str, Run], case: BadInput) -> None:
    """In a real process too, bad input ends in one ``blobstore: error:`` line and no traceback, even at exit."""
    assert process_runs[case.name].failed(*case.mentions, code=case.code).stdout_bytes == b""


# --- real processes: stdin, pipes, signals, terminals --------------------------------------------


def test_stdin_put_and_stdout_get_are_binary_safe_in_real_processes(home: Path) -> None:
    """``put TENANT KEY -`` stores piped binary stdin; ``get`` streams it back to a pipe byte for byte."""
    data = DATA * 120  # ~1.2 MB: more than one chunk each way
    put = run_process(["put", "acme", "k", "-", "--json"], home=home, input=data).ok()
    assert json.loads(put.stdout)["digest"] == digest_of(data)
    assert run_process(["get", "acme", "k"], home=home).ok().stdout_bytes == data


def test_a_closed_stdout_pipe_is_one_line(bs: Callable[..., Run], home: Path) -> None:
    """When the reader of stdout goes away, get says so in one line and exits 1."""
    bs("put", "acme", "big", "-", input=DATA * 400).ok()
    process = spawn(["get", "acme", "big"], home=home)
    assert process.stdout is not None
    process.stdout.close()
    stderr = process.communicate(timeout=60)[1].decode()
    Run(process.returncode, b"", stderr).failed("broken pipe")


def test_ctrl_c_is_one_line_with_exit_130(bs: Callable[..., Run], home: Path) -> None:
    """Ctrl-C during a put exits 130 with one line, no traceback. Its stdin does not end, so only the signal
    can end the put."""
    bs("db", "upgrade").ok()
    process = spawn(["put", "acme", "k", "-"], home=home, stdin=subprocess.PIPE)
    stdin = process.stdin
    assert stdin is not None
    stdin.write(b"x" * 3 * 1024 * 1024)  # returns once the CLI is reading: it is inside the command
    stdin.flush()
    feeder = threading.Thread(target=_feed, args=(stdin, 64 * 1024 * 1024), daemon=True)
    feeder.start()  # answers the interrupted put's last read, so the process can exit
    process.send_signal(signal.SIGINT)
    process.stdin = None  # the feeder's, not finish's
    try:
        finish(process).failed("interrupted", code=130)
    finally:
        process.kill()  # if it never ended
        feeder.join(timeout=60)
        with contextlib.suppress(BrokenPipeError):
            stdin.close()
    assert bs("ls", "acme").ok().stdout == ""


def _feed(pipe: IO[bytes], limit: int) -> None:
    """Write up to ``limit`` bytes to ``pipe`` while its reader reads them; stop early if it goes away."""
    with contextlib.suppress(BrokenPipeError):
        for _ in range(limit // 65536):
            pipe.write(b"x" * 65536)
            pipe.flush()


def test_progress_goes_to_a_terminal_stderr_never_to_stdout(home: Path, files: Path) -> None:
    """With stderr a terminal, put --recursive draws a progress bar there; stdout stays pure JSON."""
    controller, terminal = pty.openpty()
    try:
        process = spawn(["put", "acme", "-r", str(files / "site"), "--json"], home=home, stderr=terminal)
        os.close(terminal)
        result = finish(process)
        drawn = b""
        while chunk := _read_pty(controller):
            drawn += chunk
    finally:
        os.close(controller)
    assert result.code == 0
    assert [item["key"] for item in json.loads(result.stdout)] == ["css/main.css", "index.html"]
    assert b"files" in drawn
    assert b"\x1b[" not in result.stdout_bytes


def test_no_progress_when_stderr_is_not_a_terminal(bs: Callable[..., Run], files: Path) -> None:
    """Progress bars stay off when stderr is not a terminal, even with FORCE_COLOR set."""
    bs("put", "acme", "-r", str(files), env={"FORCE_COLOR": "1", "TTY_COMPATIBLE": "1"}).ok()


def _read_pty(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # EIO: the other side is closed
        return b""


# --- PostgreSQL + S3 -----------------------------------------------------------------------------


@pytest.mark.postgres
async def test_round_trip_on_postgres_and_s3(
    settings_for: Callable[[str], Awaitable[Settings]], home: Path, files: Path
) -> None:
    """put (file and stdin), get, ls, stat, cp and rm work through ``--db``/``--storage`` on PostgreSQL + S3."""
    settings = await settings_for("postgres-s3")
    options = ["--db", settings.database_url, "--storage", settings.storage_url]
    env: dict[str, str | None] = {"BLOBSTORE_S3_ENDPOINT_URL": settings.s3_endpoint_url}
    big = DATA * 300

    def bs(*args: str, input: bytes | None = None) -> Run:
        return invoke([*args, *options], home=home, input=input, env=env)

    def steps() -> None:
        assert json.loads(bs("put", "acme", "a/data", str(files / "data.bin"), "--json").ok().stdout)["size"] == 10244
        assert json.loads(bs("put", "acme", "a/big", "-", "--json", input=big).ok().stdout)["digest"] == digest_of(big)
        assert bs("get", "acme", "a/big").ok().stdout_bytes == big
        assert json.loads(bs("stat", "acme", "a/data", "--json").ok().stdout)["digest"] == digest_of(DATA)
        bs("cp", "acme", "a/data", "b/copy").ok()
        assert [e["key"] for e in json.loads(bs("ls", "acme", "a/", "--json").ok().stdout)] == ["a/big", "a/data"]
        bs("rm", "acme", "a/data", "a/big").ok()
        bs("rm", "acme", "a/data").failed("'a/data'")
        assert bs("get", "acme", "b/copy").ok().stdout_bytes == DATA
        assert [e["key"] for e in json.loads(bs("ls", "acme", "--json").ok().stdout)] == ["b/copy"]

    await asyncio.to_thread(steps)


def test_a_missing_bucket_is_one_line_naming_the_variable(s3: S3Endpoint, bs: Callable[..., Run]) -> None:
    """An S3 storage URL naming a bucket that does not exist fails at start with one line."""
    args = ["ls", "acme", "--storage", "s3://no-such-bucket-blobstore"]
    bs(*args, env={"BLOBSTORE_S3_ENDPOINT_URL": s3.url}).failed("BLOBSTORE_STORAGE_URL", "no-such-bucket-blobstore")
