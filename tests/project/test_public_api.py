"""The public surface: the names the docs promise (docs/python-api.md), and nothing private leaking."""

from __future__ import annotations

import builtins
from importlib.resources import files

import blobstore
from blobstore import errors


def test_all_lists_exactly_the_public_names() -> None:
    """Every name in __all__ exists, and every public class defined by blobstore is in __all__."""
    assert all(hasattr(blobstore, name) for name in blobstore.__all__)
    public = {
        name for name in vars(blobstore) if not name.startswith("_") and isinstance(getattr(blobstore, name), type)
    }
    assert public == set(blobstore.__all__)


def test_every_error_has_one_base_and_its_builtin() -> None:
    """Each public error derives from BlobStoreError, and NotFound also from FileNotFoundError."""
    names = [
        "NotFound",
        "InvalidKey",
        "InvalidTenant",
        "AlreadyExists",
        "IntegrityError",
        "QuotaExceeded",
        "StorageUnavailable",
    ]
    for name in names:
        assert issubclass(getattr(blobstore, name), blobstore.BlobStoreError), name
    assert issubclass(blobstore.NotFound, builtins.FileNotFoundError)
    assert issubclass(blobstore.InvalidKey, ValueError)
    assert blobstore.StorageUnavailable.retryable
    assert not blobstore.NotFound.retryable
    assert errors.__doc__ is not None
    assert "NotFound" in errors.__doc__


def test_every_error_class_is_importable_from_blobstore() -> None:
    """Each error class of blobstore.errors is in __all__, as the same class, and drawn in the module's tree."""
    classes = [value for value in vars(errors).values() if isinstance(value, type) and issubclass(value, Exception)]
    assert {cls.__name__ for cls in classes} <= set(blobstore.__all__)
    assert all(getattr(blobstore, cls.__name__) is cls for cls in classes)
    assert errors.__doc__ is not None
    assert all(f"{cls.__name__}(" in errors.__doc__ for cls in classes)


def test_package_ships_type_information_and_migrations() -> None:
    """py.typed and the Alembic migrations are part of the package, so installed wheels can type-check and migrate."""
    assert files("blobstore").joinpath("py.typed").is_file()
    versions = files("blobstore._migrations").joinpath("versions")
    assert any(entry.name.endswith(".py") and entry.name[0].isdigit() for entry in versions.iterdir())
