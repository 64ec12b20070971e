"""blobstore: a content-addressed, deduplicating blob store with a relational metadata database."""

from blobstore.config import Settings
from blobstore.errors import (
    AlreadyExists,
    BlobStoreError,
    ConfigurationError,
    IntegrityError,
    InvalidInput,
    InvalidKey,
    InvalidTenant,
    NotFound,
    QuotaExceeded,
    StorageUnavailable,
)
from blobstore.results import BlobInfo, Page
from blobstore.store import BlobStore, BlobStream, PutItem, Tenant

__all__ = [
    "AlreadyExists",
    "BlobInfo",
    "BlobStore",
    "BlobStoreError",
    "BlobStream",
    "ConfigurationError",
    "IntegrityError",
    "InvalidInput",
    "InvalidKey",
    "InvalidTenant",
    "NotFound",
    "Page",
    "PutItem",
    "QuotaExceeded",
    "Settings",
    "StorageUnavailable",
    "Tenant",
]
