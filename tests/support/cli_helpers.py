"""Running the ``blobstore`` command in tests: in-process (click's CliRunner) or as a real process.

Both take the command's arguments and return a :class:`Run`. Every run is
isolated from the caller's ``BLOBSTORE_*`` variables; ``home`` becomes
``BLOBSTORE_HOME``. A real process runs this checkout's code
(``PYTHONPATH`` = the repository root), whatever is installed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner

import blobstore
from blobstore.cli import cli

REPO = Path(blobstore.__file__).parents[1]
#: The line a command that creates the embedded store prints, once, on stderr.
CREATED = re.compile(r"\Ablobstore: created a new store: [^\n]+\n")


@dataclass(frozen=True)
class Run:
    """What one ``blobstore`` invocation did."""

    code: int
    stdout_bytes: bytes
    stderr: str

    @property
    def stdout(self) -> str:
        return self.stdout_bytes.decode()

    @property
    def complaints(self) -> str:
        """stderr without the one line a command that created the store prints about it."""
        return CREATED.sub("", self.stderr, count=1)

    def ok(self) -> Run:
        """Assert success without a word on stderr (but the note of a store just created); return self."""
        assert (self.code, self.complaints) == (0, ""), f"exit {self.code}: {self.stderr}"
        return self

    def failed(self, *mentions: str, code: int = 1, prefix: str = "blobstore: error: ") -> Run:
        """Assert the failure contract: exit ``code``, exactly one line on stderr (but the note of a store just
        created), no traceback."""
        lines = self.complaints.splitlines()
        assert self.code == code, f"exit {self.code}, expected {code}: {self.stderr}"
        assert len(lines) == 1, f"expected one line on stderr, got: {self.stderr!r}"
        assert lines[0].startswith(prefix), lines[0]
        assert "Traceback" not in self.stderr
        for text in mentions:
            assert text in lines[0], f"{text!r} not in {lines[0]!r}"
        return self


def new_store(home: Path) -> Path:
    """``home`` holding a new, empty embedded store (its database migrated), for commands that never create
    one; returns ``home``."""
    invoke(["db", "upgrade"], home=home).ok()
    return home


def isolated_env(home: Path, extra: Mapping[str, str | None] | None = None) -> dict[str, str | None]:
    """Changes to ``os.environ`` that isolate a run: no inherited BLOBSTORE_* variables, ``home`` as the home."""
    changes: dict[str, str | None] = {name: None for name in os.environ if name.startswith("BLOBSTORE_")}
    changes["BLOBSTORE_HOME"] = str(home)
    changes.update(extra or {})
    return changes


def invoke(
    args: Sequence[str], *, home: Path, input: bytes | None = None, env: Mapping[str, str | None] | None = None
) -> Run:
    """Run ``blobstore ARGS`` in this process with click's CliRunner."""
    result = CliRunner().invoke(cli, list(args), input=input, env=isolated_env(home, env))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # escaped the CLI's own handling: a bug worth its traceback
    return Run(result.exit_code, result.stdout_bytes, result.stderr)


def process_env(home: Path, extra: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """The environment of a real ``blobstore`` process running this checkout."""
    env = dict(os.environ)
    for name, value in isolated_env(home, {"PYTHONPATH": str(REPO), **(extra or {})}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def spawn(
    args: Sequence[str],
    *,
    home: Path,
    env: Mapping[str, str | None] | None = None,
    stdin: int | None = subprocess.DEVNULL,
    stderr: int | None = subprocess.PIPE,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``python -m blobstore ARGS`` as a real process (stdout and stderr piped) in ``cwd`` (default: the
    parent of ``home``)."""
    return subprocess.Popen(
        [sys.executable, "-m", "blobstore", *args],
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=stderr,
        env=process_env(home, env),
        cwd=cwd or home.parent,
    )


def finish(process: subprocess.Popen[bytes], input: bytes | None = None, timeout: float = 60) -> Run:
    """Wait for a spawned process and collect what it did."""
    stdout, stderr = process.communicate(input, timeout=timeout)
    return Run(process.returncode, stdout, (stderr or b"").decode())


def run_process(
    args: Sequence[str],
    *,
    home: Path,
    input: bytes | None = None,
    env: Mapping[str, str | None] | None = None,
    cwd: Path | None = None,
) -> Run:
    """Run ``python -m blobstore ARGS`` as a real process (in ``cwd``, default the parent of ``home``) and wait."""
    stdin = subprocess.DEVNULL if input is None else subprocess.PIPE
    return finish(spawn(args, home=home, env=env, stdin=stdin, cwd=cwd), input)


def listed_commands(help_text: str) -> dict[str, str]:
    """The ``Commands:`` section of a ``--help`` text: each command's description, its wrapped lines joined."""
    listed: dict[str, str] = {}
    for line in help_text.split("Commands:")[1].strip("\n").splitlines():
        if line.startswith("   "):  # a description's continuation, indented past the command names
            listed[next(reversed(listed))] += " " + line.strip()
        elif line.strip():
            name, description = line.split(None, 1)
            listed[name] = description
    return listed
