"""``BLOBSTORE_STORAGE_URL`` -> a storage backend."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from blobstore.errors import ConfigurationError
from blobstore.extras import needs
from blobstore.storage.base import ObjectStorage
from blobstore.storage.local import LocalStorage
from blobstore.storage.memory import MemoryStorage

_VAR = "BLOBSTORE_STORAGE_URL"


def open_storage_from_url(url: str, *, endpoint_url: str | None, region: str) -> ObjectStorage:
    """Build the backend ``url`` names: ``file:///abs/dir``, ``s3://bucket[/prefix]`` or ``memory://``.

    Raises ConfigurationError, naming the variable, for any other URL. Nothing is contacted yet.
    """
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        raise ConfigurationError(f"{_VAR}: {url!r} must not have a query or fragment")
    if parts.scheme == "memory":
        if parts.netloc or parts.path:
            raise ConfigurationError(f"{_VAR}: {url!r} must be exactly memory://")
        return MemoryStorage()
    if parts.scheme == "file":
        path = unquote(parts.path)
        if parts.netloc not in ("", "localhost") or not path.startswith("/"):
            raise ConfigurationError(f"{_VAR}: {url!r} must name an absolute directory, like file:///srv/blobs")
        return LocalStorage(Path(path))
    if parts.scheme == "s3":
        prefix = unquote(parts.path).strip("/")
        if not parts.netloc:
            raise ConfigurationError(f"{_VAR}: {url!r} names no bucket; use s3://bucket[/prefix]")
        if prefix and any(segment in ("", ".", "..") for segment in prefix.split("/")):
            raise ConfigurationError(f"{_VAR}: {url!r} has an empty, '.' or '..' segment in its prefix")
        with needs("s3", "S3 storage (BLOBSTORE_STORAGE_URL)"):
            from blobstore.storage.s3 import S3Storage  # aioboto3 loads only for a store on S3

        return S3Storage(parts.netloc, prefix, endpoint_url=endpoint_url, region=region)
    if not parts.scheme:
        raise ConfigurationError(f"{_VAR}: {url!r} is not a URL; use file:///abs/dir, s3://bucket or memory://")
    raise ConfigurationError(f"{_VAR}: unknown scheme {parts.scheme!r} in {url!r}; use file://, s3:// or memory://")
