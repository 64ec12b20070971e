"""A SQLite database's files are its owner's alone: the catalog and its sealed secrets are nobody else's.

SQLite creates a database's ``-wal``, ``-shm`` and ``-journal`` files with the
mode of the database file itself, so a database file created 0600 keeps every
later sibling 0600 without touching the process umask (which a library must
not). An existing database left readable by others (by an earlier version, or
a copy) is made private when a store opens it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

_SIBLING_SUFFIXES = ("-wal", "-shm", "-journal")


def make_private(database: Path) -> None:
    """Create ``database``'s directory (0700) and the file itself (0600) if missing, and take group and
    other access from it and its existing siblings; OSError if that fails."""
    database.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(database, os.O_RDWR | os.O_CREAT, 0o600))
    for path in (database, *(Path(f"{database}{suffix}") for suffix in _SIBLING_SUFFIXES)):
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o077:
            path.chmod(mode & 0o700)
