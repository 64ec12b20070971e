"""Which source files an import takes, under which keys: ``--include``/``--exclude`` globs and key naming.

A file's key is ``prefix + its relative path``, validated like any key; a path
that cannot be a key (a control character, a name that is not UTF-8, too long)
is reported with the reason, never renamed.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass, field

from blobstore.errors import InvalidKey
from blobstore.model.keys import validate_key, validate_prefix
from blobstore.transfer.sources import Failure, ImportSource, Scan, SourceFile, shown


@dataclass(frozen=True)
class Entry:
    """A source file and the key it goes to."""

    file: SourceFile
    key: str


@dataclass
class Selection:
    """The plan of an import: the files it takes, and under which keys; what it cannot take, and why;
    how many files the globs left out."""

    source: str
    prefix: str
    entries: list[Entry] = field(default_factory=list)
    problems: list[Failure] = field(default_factory=list)
    excluded: int = 0

    @property
    def total_bytes(self) -> int:
        return sum(entry.file.size for entry in self.entries)


def matches(path: str, patterns: Sequence[str]) -> bool:
    """True if a glob matches the whole relative path (``*`` crosses ``/``) or the file's name."""
    name = path.rpartition("/")[2]
    return any(fnmatch.fnmatchcase(path, pattern) or fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


async def plan_import(
    source: ImportSource, *, prefix: str = "", include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> Selection:
    """List ``source`` and select its files: see :func:`select`."""
    validate_prefix(prefix)
    return select(await source.scan(), source.url, prefix=prefix, include=include, exclude=exclude)


def select(
    scan: Scan, source: str, *, prefix: str = "", include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> Selection:
    """Apply the globs (a file must match an include, if any are given, and no exclude) and name the keys."""
    validate_prefix(prefix)
    selection = Selection(source, prefix, problems=list(scan.problems))
    for file in scan.files:
        if (include and not matches(file.path, include)) or matches(file.path, exclude):
            selection.excluded += 1
            continue
        try:
            selection.entries.append(Entry(file, validate_key(prefix + file.path)))
        except InvalidKey as exc:
            selection.problems.append(Failure(shown(file.path), f"cannot be a key: {exc}"))
    return selection
