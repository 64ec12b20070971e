"""Where the CLI finds its store, and when it may not open one.

Without ``BLOBSTORE_HOME``, the home is the nearest ``.blobstore`` directory holding a store in the current
directory or its parents, as git finds its repository; with none, ``./.blobstore``. Only commands that write
may create a new embedded store; every other command says that there is none and how to point at one. With
a server configured for the object commands, the commands that need the database refuse instead of quietly
opening a local store.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from blobstore.errors import ConfigurationError

if TYPE_CHECKING:
    from blobstore.core.config import Settings

HOME = "BLOBSTORE_HOME"
SERVER_URL = "BLOBSTORE_SERVER_URL"
TOKEN = "BLOBSTORE_TOKEN"


def find_home(start: Path) -> Path | None:
    """The nearest ``.blobstore`` directory holding an embedded database, in ``start`` or its parents."""
    from blobstore.core.config import DATABASE_FILE, DEFAULT_HOME  # with SQLAlchemy: not for --help

    for directory in (start, *start.parents):
        if (directory / DEFAULT_HOME / DATABASE_FILE).is_file():
            return directory / DEFAULT_HOME
    return None


def environ_with_home(environ: Mapping[str, str] | None = None) -> Mapping[str, str]:
    """``environ`` (default: the process's), with BLOBSTORE_HOME set to the found home if it was unset."""
    environ = os.environ if environ is None else environ
    found = None if environ.get(HOME) else find_home(Path.cwd())
    return environ if found is None else {**environ, HOME: str(found)}


def missing_embedded_database(settings: Settings) -> Path | None:
    """The embedded database file the settings name, if it does not exist yet (opening would create it)."""
    database = settings.sqlite_file
    return database if database is not None and not database.exists() else None


def no_store(settings: Settings, database: Path) -> ConfigurationError:
    """The error of a command that would have had to create the store ``database`` belongs to."""
    from blobstore.core.config import DATABASE_FILE, DEFAULT_HOME

    create = "`blobstore put` creates one"
    if database != settings.home / DATABASE_FILE:
        return ConfigurationError(
            f"no database at {database} (BLOBSTORE_DATABASE_URL or --db): point it at a store's database, or {create}"
        )
    if os.environ.get(HOME):
        return ConfigurationError(
            f"no store at {HOME}={settings.home}: set it to a store's directory, or {create} there"
        )
    return ConfigurationError(
        f"no store here: no {DEFAULT_HOME} directory with a store in {Path.cwd()} or its parents; "
        f"set {HOME} to a store's directory, or {create} in ./{DEFAULT_HOME}"
    )


def describe(settings: Settings) -> str:
    """Where a new embedded store lives, for the one line that says it was created."""
    from blobstore.core.config import DATABASE_FILE

    home_default = settings.sqlite_file == settings.home / DATABASE_FILE
    return str(settings.home) if home_default else f"database {settings.sqlite_file}"


def refuse_remote_mode(command: str) -> None:
    """ConfigurationError if a server is configured for the object commands: ``command`` needs the database."""
    configured = [name for name in (SERVER_URL, TOKEN) if os.environ.get(name)]
    if configured:
        raise ConfigurationError(
            f"`{command}` needs the database and storage themselves and cannot go through a server "
            f"({' and '.join(configured)} set): unset {SERVER_URL} and {TOKEN} to run it where the database is"
        )
