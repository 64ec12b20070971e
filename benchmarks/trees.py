"""Source trees for the import benchmarks: many files in nested folders, a share of them duplicates."""

from __future__ import annotations

import os
from pathlib import Path

#: Files per folder, so no folder holds thousands of entries.
PER_FOLDER = 100


def write_tree(root: Path, *, files: int, size: int, duplicates: float) -> int:
    """Write ``files`` files of ``size`` bytes under ``root``; the last ``duplicates`` share repeat earlier ones.

    Returns the bytes written. Content is random, so only whole-file duplicates dedup.
    """
    distinct = max(1, files - int(files * duplicates))
    originals: list[bytes] = []
    for index in range(files):
        if index < distinct:
            data = os.urandom(size)
            if len(originals) < 64:
                originals.append(data)
        else:
            data = originals[index % len(originals)]
        path = root / f"d{index // PER_FOLDER:04}" / f"f{index:06}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files * size
