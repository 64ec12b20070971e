"""A fast command line: ``--help`` and object commands load only what they use (checked by what they import)."""

from __future__ import annotations

from pathlib import Path

from blobstore.db import migrate
from tests.support.cli_helpers import Run, run_process

#: Loaded for a store on S3, an HTML report, a migration or a progress bar: never for help or a local stat.
HEAVY = ("aioboto3", "alembic", "rich.console", "rich.progress")
#: Loaded for GC, fsck and cost reports: never for a stat.
MAINTENANCE = {"blobstore.protocol.gc", "blobstore.maintenance.fsck", "blobstore.accounting.report"}


def imported(run: Run) -> set[str]:
    """The modules a process imported (from ``PYTHONPROFILEIMPORTTIME`` lines on its stderr)."""
    names = set()
    for line in run.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip())
    return names


def run_profiled(args: list[str], home: Path) -> tuple[Run, set[str]]:
    run = run_process(args, home=home, env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert run.code == 0, run.stderr[-2000:]
    return run, imported(run)


def test_help_loads_neither_the_store_nor_the_event_loop(tmp_path: Path) -> None:
    """``blobstore --help`` lists every command without importing SQLAlchemy, asyncio, boto or rich's consoles."""
    run, modules = run_profiled(["--help"], tmp_path / "home")
    assert "import" in run.stdout
    assert "stat" in run.stdout
    assert "blobstore.cli.objects" in modules
    assert not {name for name in modules if name.split(".")[0] in ("sqlalchemy", "asyncio", "aiosqlite", "asyncpg")}
    assert "blobstore.store" not in modules
    assert not {name for name in modules if name.startswith(HEAVY)}


def test_stat_on_the_embedded_store_skips_s3_migrations_progress_bars_and_maintenance(tmp_path: Path) -> None:
    """``blobstore stat`` of an existing key on SQLite + a directory imports no aioboto3, Alembic, rich console,
    GC, fsck or cost report."""
    home = tmp_path / "home"
    source = tmp_path / "value.txt"
    source.write_bytes(b"value")
    run_profiled(["put", "acme", "k", str(source)], home)  # creates and migrates the store
    run, modules = run_profiled(["stat", "acme", "k", "--json"], home)
    assert '"key": "k"' in run.stdout
    assert "blobstore.store" in modules
    assert not {name for name in modules if name.startswith(HEAVY)}
    assert not modules & MAINTENANCE


def test_head_is_alembics_newest_revision() -> None:
    """migrate.head(), read from the migration files to spare a current store the Alembic import, is Alembic's."""
    from alembic.script import ScriptDirectory

    assert ScriptDirectory.from_config(migrate.alembic_config()).get_current_head() == migrate.head()
