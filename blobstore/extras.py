"""The optional parts of the package, and the one error that says which extra installs a missing one.

``pip install blobstore`` is the embedded default (SQLite and a local directory); the extras add
``postgres`` (asyncpg), ``s3`` (S3 storage and imports from buckets), ``server`` (``blobstore serve``: the HTTP
service and the S3 API), ``client`` (``BlobClient`` and the CLI's remote mode), and ``all``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from blobstore.errors import ConfigurationError

#: The top-level modules each extra installs (as its code imports them).
MODULES = {
    "postgres": ("asyncpg",),
    "s3": ("aioboto3", "aiobotocore", "botocore", "awscrt"),
    "server": ("fastapi", "starlette", "uvicorn", "prometheus_client", "fastapi_offline", "botocore", "awscrt"),
    "client": ("httpx",),
}


@contextmanager
def needs(extra: str, purpose: str) -> Iterator[None]:
    """Run the block; a module of ``extra`` that is not installed becomes one ConfigurationError naming
    ``purpose`` and the extra to install (any other import error passes through)."""
    try:
        yield
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in MODULES[extra]:
            raise
        raise ConfigurationError(
            f"{purpose} needs {exc.name}, which is not installed: pip install 'blobstore[{extra}]'"
        ) from exc
