"""The package's extras: the core alone runs the embedded default, and whatever needs a missing extra says, in
one line, which one to install. A missing package is simulated in a real ``blobstore`` process by making its
import fail (``sys.modules[name] = None``), as an environment without it would."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from blobstore.extras import MODULES
from tests.support.cli_helpers import REPO, Run, process_env

_TOKEN = "bst~acme~0123456789abcdef~" + "a" * 43
#: Every module an extra installs.
ALL_OPTIONAL = sorted({module for modules in MODULES.values() for module in modules})


def blobstore_without(
    modules: list[str], args: list[str], *, home: Path, env: dict[str, str | None] | None = None
) -> Run:
    """Run ``blobstore ARGS`` in a real process in which ``modules`` cannot be imported."""
    program = (
        "import sys\n"
        f"for name in {modules!r}:\n"
        "    sys.modules[name] = None\n"
        "from blobstore.cli import main\n"
        f"sys.argv = ['blobstore', *{args!r}]\n"
        "main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, env=process_env(home, env), cwd=home.parent, timeout=60
    )
    return Run(done.returncode, done.stdout, done.stderr.decode())


def test_the_core_alone_runs_the_embedded_default(tmp_path: Path) -> None:
    """With no optional package importable, put, get, ls, report, gc and fsck all work on SQLite + a directory."""
    home = tmp_path / "home"
    source = tmp_path / "value.bin"
    source.write_bytes(b"core")
    blobstore_without(ALL_OPTIONAL, ["put", "acme", "k", str(source)], home=home).ok()
    assert blobstore_without(ALL_OPTIONAL, ["get", "acme", "k"], home=home).ok().stdout == "core"
    for command in (["ls", "acme"], ["report"], ["gc"], ["fsck"], ["export", "acme", str(tmp_path / "out")]):
        blobstore_without(ALL_OPTIONAL, command, home=home).ok()
    assert (tmp_path / "out" / "k").read_bytes() == b"core"


@pytest.mark.parametrize(
    ("extra", "missing", "args", "env"),
    [
        ("postgres", "asyncpg", ["ls", "acme"], {"BLOBSTORE_DATABASE_URL": "postgresql+asyncpg://u@127.0.0.1/db"}),
        ("s3", "aioboto3", ["ls", "acme"], {"BLOBSTORE_STORAGE_URL": "s3://bucket"}),
        ("s3", "aioboto3", ["import", "acme", "s3://bucket/prefix"], None),
        ("server", "fastapi", ["serve", "--port", "0"], None),
        ("server", "uvicorn", ["serve", "--port", "0"], None),
        (
            "client",
            "httpx",
            ["ls", "acme"],
            {"BLOBSTORE_SERVER_URL": "http://127.0.0.1:8080", "BLOBSTORE_TOKEN": _TOKEN},
        ),
    ],
)
def test_a_missing_extra_is_named_in_one_line(
    tmp_path: Path, extra: str, missing: str, args: list[str], env: dict[str, str | None] | None
) -> None:
    home = tmp_path / "home"
    blobstore_without([], ["db", "upgrade"], home=home).ok()  # an embedded store, as a user of it would have
    blobstore_without([missing], args, home=home, env=env).failed(missing, f"pip install 'blobstore[{extra}]'")


def test_the_extras_hold_what_the_code_imports_and_dev_installs_them_all() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    core = " ".join(project["dependencies"])
    extras = project["optional-dependencies"]
    for extra in MODULES:
        assert extra in extras
    for heavy in ("asyncpg", "aioboto3", "fastapi", "uvicorn", "prometheus-client", "httpx"):
        assert heavy not in core, heavy
    assert extras["all"] == ["blobstore[postgres,s3,server,client]"]
    assert "blobstore[all]" in extras["dev"]
