"""The wheel ships every package of the source tree (a package left out installs, then fails to import)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_is_listed_for_the_wheel() -> None:
    """Each directory of blobstore/ with an __init__.py is in [tool.setuptools] packages."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "blobstore").rglob("__init__.py")
        if "_migrations" not in init.parts
    }
    assert found <= listed, f"missing from pyproject.toml: {sorted(found - listed)}"
