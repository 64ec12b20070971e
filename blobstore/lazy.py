"""Packages whose public names load on first use, so ``import blobstore`` (and ``blobstore --help``) stays fast.

A package lists ``name -> module`` and sets ``__getattr__ = lazy_names(__name__, NAMES)``
(PEP 562); ``from package import name`` and ``package.name`` import ``module`` then,
once. Type checkers see the names through the package's ``TYPE_CHECKING`` imports.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_names(package: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``names[name]`` and returns (and keeps) its ``name``."""

    def load(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    return load
