"""The documentation stays true: its Python examples run, and its command table matches the CLI."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli_helpers import invoke, listed_commands

ROOT = Path(__file__).resolve().parents[2]


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.DOTALL)


async def test_the_python_api_example_runs_on_the_embedded_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/python-api.md's example (with its assertions) runs against a fresh embedded store."""
    [example] = python_blocks(ROOT / "docs" / "python-api.md")
    monkeypatch.setenv("BLOBSTORE_HOME", str(tmp_path / "home"))
    for name in ("BLOBSTORE_DATABASE_URL", "BLOBSTORE_STORAGE_URL"):
        monkeypatch.delenv(name, raising=False)
    namespace: dict[str, Any] = {}
    exec(compile(example, "docs/python-api.md", "exec"), namespace)
    await namespace["main"](tmp_path)


async def test_the_readme_example_runs_on_the_embedded_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's first Python example runs as written (inside a coroutine) on a fresh embedded store."""
    example = python_blocks(ROOT / "README.md")[0]
    imports = "\n".join(line for line in example.splitlines() if line.startswith(("from ", "import ")))
    body = "\n".join(line for line in example.splitlines() if not line.startswith(("from ", "import ")))
    source = f"{imports}\n\nasync def main():\n{textwrap.indent(body, '    ')}\n"
    monkeypatch.setenv("BLOBSTORE_HOME", str(tmp_path / "home"))
    for name in ("BLOBSTORE_DATABASE_URL", "BLOBSTORE_STORAGE_URL"):
        monkeypatch.delenv(name, raising=False)
    namespace: dict[str, Any] = {}
    exec(compile(source, "README.md", "exec"), namespace)
    await namespace["main"]()


def test_the_cli_reference_lists_every_command(tmp_path: Path) -> None:
    """docs/cli.md documents exactly the commands `blobstore --help` lists."""
    listed = set(listed_commands(invoke(["--help"], home=tmp_path).ok().stdout))
    table = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `blobstore ([a-z-]+)", table, flags=re.MULTILINE))
    assert documented == listed
