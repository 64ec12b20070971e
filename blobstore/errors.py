"""The blobstore error tree.

Every error raised by the public API derives from :class:`BlobStoreError`, and
each also inherits the builtin it resembles, so callers may catch either::

    BlobStoreError(Exception)
    ├── NotFound(FileNotFoundError)        missing key (or another tenant's key)
    ├── InvalidKey(ValueError)             key breaks the naming rules
    ├── InvalidTenant(ValueError)          tenant name breaks the naming rules
    ├── InvalidInput(ValueError)           any other bad argument
    ├── PreconditionFailed(Exception)      the key is not in the version a conditional write expects
    │   └── AlreadyExists(FileExistsError) put(if_absent=True) on an existing key
    ├── IntegrityError(ValueError)         bytes do not match their digest
    ├── QuotaExceeded(Exception)           a tenant limit would be crossed
    │   └── ObjectTooLarge                 larger than the store's maximum object size
    ├── ConfigurationError(ValueError)     bad settings, detected at start
    └── StorageUnavailable(ConnectionError) object storage or database unreachable

``retryable`` tells whether trying the same call again can help.
"""

from __future__ import annotations


class BlobStoreError(Exception):
    """Base of every blobstore error."""

    retryable = False


class NotFound(BlobStoreError, FileNotFoundError):
    """The key does not exist for this tenant."""


class InvalidKey(BlobStoreError, ValueError):
    """The key breaks the naming rules; raised before any I/O."""


class InvalidTenant(BlobStoreError, ValueError):
    """The tenant name breaks the naming rules; raised before any I/O."""


class InvalidInput(BlobStoreError, ValueError):
    """An argument other than a key or tenant is unusable (a byte range, a digest, a limit)."""


class PreconditionFailed(BlobStoreError):
    """The key is not in the version a conditional write expects; nothing was changed.

    Raised by ``put`` and ``delete`` with ``if_match`` or ``if_unmodified_since``; HTTP 412.
    """


class AlreadyExists(PreconditionFailed, FileExistsError):
    """``put(..., if_absent=True)`` found the key already present."""


class IntegrityError(BlobStoreError, ValueError):
    """Stored or supplied bytes do not hash to the expected digest."""


class QuotaExceeded(BlobStoreError):
    """The put would push a tenant past its byte or object limit; nothing was stored."""


class ObjectTooLarge(QuotaExceeded):
    """The object is larger than the store's maximum object size (BLOBSTORE_MAX_OBJECT_SIZE); nothing was stored."""


class ConfigurationError(BlobStoreError, ValueError):
    """Settings are unusable; the message names the variable to fix."""


class StorageUnavailable(BlobStoreError, ConnectionError):
    """Object storage or the database could not be reached or kept failing."""

    retryable = True
