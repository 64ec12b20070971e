"""Object storage backends behind one interface, :class:`ObjectStorage`."""

from blobstore.storage.base import (
    CHUNK_SIZE,
    IncompleteUpload,
    ObjectInfo,
    ObjectMissing,
    ObjectStorage,
    Source,
    read_all,
    source_size,
)
from blobstore.storage.local import LocalStorage
from blobstore.storage.memory import MemoryStorage
from blobstore.storage.s3 import S3Storage
from blobstore.storage.urls import open_storage_from_url

__all__ = [
    "CHUNK_SIZE",
    "IncompleteUpload",
    "LocalStorage",
    "MemoryStorage",
    "ObjectInfo",
    "ObjectMissing",
    "ObjectStorage",
    "S3Storage",
    "Source",
    "open_storage_from_url",
    "read_all",
    "source_size",
]
