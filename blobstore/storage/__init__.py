"""Object storage backends behind one interface, :class:`ObjectStorage`.

The backends load on first use (:mod:`blobstore.lazy`): a store on a local
directory never imports aioboto3.
"""

from typing import TYPE_CHECKING

from blobstore.lazy import lazy_names
from blobstore.storage.base import (
    CHUNK_SIZE,
    DeferredWrites,
    IncompleteUpload,
    ObjectInfo,
    ObjectStorage,
    Source,
    StagedObject,
    read_all,
    source_size,
)
from blobstore.storage.urls import open_storage_from_url

if TYPE_CHECKING:
    from blobstore.storage.local import LocalStorage
    from blobstore.storage.memory import MemoryStorage
    from blobstore.storage.s3 import S3Storage

__getattr__ = lazy_names(
    __name__,
    {
        "LocalStorage": "blobstore.storage.local",
        "MemoryStorage": "blobstore.storage.memory",
        "S3Storage": "blobstore.storage.s3",
    },
)

__all__ = [
    "CHUNK_SIZE",
    "DeferredWrites",
    "IncompleteUpload",
    "LocalStorage",
    "MemoryStorage",
    "ObjectInfo",
    "ObjectStorage",
    "S3Storage",
    "Source",
    "StagedObject",
    "open_storage_from_url",
    "read_all",
    "source_size",
]
