"""The package as users get it: every package of the source tree in the wheel (a package left out installs,
then fails to import), its licence file, and no reference to documents users do not have."""

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


def test_the_license_the_metadata_names_is_shipped() -> None:
    """pyproject says Apache-2.0 and ships LICENSE, which is that licence's text."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"
    assert project["license-files"] == ["LICENSE"]
    assert "Apache License\n                           Version 2.0" in (ROOT / "LICENSE").read_text()


def test_nothing_users_read_points_at_documents_they_do_not_have() -> None:
    """The product brief is the developers' alone: the package, its metadata, README and docs never cite it."""
    shipped = [ROOT / "pyproject.toml", ROOT / "README.md", *(ROOT / "blobstore").rglob("*.py")]
    shipped += (ROOT / "docs").rglob("*.md")
    citing = [str(path.relative_to(ROOT)) for path in shipped if "PRODUCT.md" in path.read_text(encoding="utf-8")]
    assert citing == []
