"""blobstore: a content-addressed, deduplicating blob store with a relational metadata database.

The store and its settings load on first use (:mod:`blobstore.lazy`), so the
command line starts without importing the database layer it may not need.
"""

from typing import TYPE_CHECKING

from blobstore.errors import (
    AlreadyExists,
    BlobStoreError,
    ConfigurationError,
    EntityTooSmall,
    Forbidden,
    IntegrityError,
    InvalidInput,
    InvalidKey,
    InvalidPart,
    InvalidPartOrder,
    InvalidTenant,
    NoSuchUpload,
    NotFound,
    ObjectMissing,
    ObjectTooLarge,
    PreconditionFailed,
    QuotaExceeded,
    RangeNotSatisfiable,
    StorageUnavailable,
    StorageUnreachable,
    Unauthorized,
    UnsafePath,
)
from blobstore.lazy import lazy_names
from blobstore.model.results import BlobInfo, Page

if TYPE_CHECKING:
    from blobstore.contract import TenantAPI
    from blobstore.core.config import Settings
    from blobstore.store import BlobStore, BlobStream, PutItem, Tenant

__getattr__ = lazy_names(
    __name__,
    {
        "Settings": "blobstore.core.config",
        "BlobStore": "blobstore.store",
        "BlobStream": "blobstore.store",
        "PutItem": "blobstore.store",
        "Tenant": "blobstore.store",
        "TenantAPI": "blobstore.contract",
    },
)

__all__ = [
    "AlreadyExists",
    "BlobInfo",
    "BlobStore",
    "BlobStoreError",
    "BlobStream",
    "ConfigurationError",
    "EntityTooSmall",
    "Forbidden",
    "IntegrityError",
    "InvalidInput",
    "InvalidKey",
    "InvalidPart",
    "InvalidPartOrder",
    "InvalidTenant",
    "NoSuchUpload",
    "NotFound",
    "ObjectMissing",
    "ObjectTooLarge",
    "Page",
    "PreconditionFailed",
    "PutItem",
    "QuotaExceeded",
    "RangeNotSatisfiable",
    "Settings",
    "StorageUnavailable",
    "StorageUnreachable",
    "Tenant",
    "TenantAPI",
    "Unauthorized",
    "UnsafePath",
]
