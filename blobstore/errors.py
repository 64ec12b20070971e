"""The blobstore error tree, and the one table from each error to its answer over HTTP (and S3).

Every error blobstore raises derives from :class:`BlobStoreError`, and each also
inherits the builtin it resembles, so callers may catch either. All are
importable from ``blobstore``::

    BlobStoreError(Exception)
    ├── NotFound(FileNotFoundError)          missing key (or another tenant's key)
    │   └── NoSuchUpload(NotFound)           S3: no such multipart upload in progress (or another tenant's)
    ├── InvalidKey(ValueError)               key breaks the naming rules
    ├── InvalidTenant(ValueError)            tenant name breaks the naming rules
    ├── InvalidInput(ValueError)             any other bad argument
    │   ├── InvalidPart(InvalidInput)        S3: a completion names a part not uploaded (with that ETag)
    │   ├── InvalidPartOrder(InvalidInput)   S3: a completion's parts are not in ascending order
    │   └── EntityTooSmall(InvalidInput)     S3: a completion's part other than the last is under 5 MiB
    ├── RangeNotSatisfiable(ValueError)      HTTP: no byte of the requested range exists
    ├── PreconditionFailed(Exception)        the key is not in the version a conditional write expects
    │   └── AlreadyExists(FileExistsError)   put(if_absent=True) on an existing key
    ├── IntegrityError(ValueError)           bytes do not match their digest
    ├── QuotaExceeded(Exception)             a tenant limit would be crossed
    │   └── ObjectTooLarge(QuotaExceeded)    larger than the store's maximum object size
    ├── Unauthorized(PermissionError)        HTTP: no usable token
    ├── Forbidden(PermissionError)           HTTP: the token is not for this tenant, or lacks the scope
    ├── ConfigurationError(ValueError)       bad settings, detected at start
    │   └── StorageUnreachable(ConfigurationError)  object storage did not answer when the store was opened
    ├── StorageUnavailable(ConnectionError)  object storage or database unreachable
    ├── ObjectMissing(FileNotFoundError)     storage backends: no object under the key
    └── UnsafePath(OSError)                  export: a key would be written outside its folder

``retryable`` tells whether trying the same call again can help.

:data:`STATUS` gives each class its HTTP status and S3 error code. The server
answers from it and the client maps answers back with it (the problem's
``code`` is the class name), so the two cannot drift; a subclass without an
entry of its own answers as its nearest parent that has one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


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


class NoSuchUpload(NotFound):
    """No multipart upload of that id (for that key) is in progress for this tenant (blobstore.multipart)."""


class InvalidPart(InvalidInput):
    """A multipart completion names a part that was not uploaded, or not with the ETag named."""


class InvalidPartOrder(InvalidInput):
    """A multipart completion's parts are not in ascending order of part number."""


class EntityTooSmall(InvalidInput):
    """A part of a multipart completion other than the last is shorter than 5 MiB."""


class RangeNotSatisfiable(BlobStoreError, ValueError):
    """No byte of the requested range exists (the object is shorter, or empty).

    HTTP only (the library clamps ranges); ``size`` is the object's, when the raiser knows it.
    """

    def __init__(self, message: str, size: int | None = None) -> None:
        super().__init__(message)
        self.size = size


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


class Unauthorized(BlobStoreError, PermissionError):
    """The request carries no token, or one that is malformed, unknown, expired or revoked (HTTP 401)."""


class Forbidden(BlobStoreError, PermissionError):
    """The token is valid but not for this tenant or this operation (HTTP 403)."""


class ConfigurationError(BlobStoreError, ValueError):
    """Settings are unusable; the message names the variable to fix."""


class StorageUnreachable(ConfigurationError):
    """Object storage did not answer when the store was opened (its endpoint refused the connection or timed
    out): a wrong endpoint, or an outage. A node with a spool starts anyway and pairs with the storage once it
    answers (docs/spool.md); any other node refuses to start."""


class StorageUnavailable(BlobStoreError, ConnectionError):
    """Object storage or the database could not be reached or kept failing."""

    retryable = True


class ObjectMissing(BlobStoreError, FileNotFoundError):
    """The backend holds no object under the key.

    Raised by storage backends; the store turns it into what it means for a tenant (an IntegrityError
    for a key whose bytes are gone), so a server never answers with it.
    """


class UnsafePath(BlobStoreError, OSError):
    """A key would be written outside DEST, through a symbolic link, or over a folder."""


@dataclass(frozen=True)
class ErrorStatus:
    """How an error is answered: its HTTP ``status``, and the ``s3_code`` the S3 API answers with (at the
    HTTP status the S3 API reference gives that code)."""

    status: int
    s3_code: str


#: The one table from error class to answer. Errors a server never sends (ObjectMissing, UnsafePath) are 500s.
STATUS: Mapping[type[BlobStoreError], ErrorStatus] = MappingProxyType(
    {
        BlobStoreError: ErrorStatus(500, "InternalError"),
        NotFound: ErrorStatus(404, "NoSuchKey"),
        NoSuchUpload: ErrorStatus(404, "NoSuchUpload"),
        InvalidKey: ErrorStatus(400, "InvalidArgument"),
        InvalidTenant: ErrorStatus(400, "InvalidArgument"),
        InvalidInput: ErrorStatus(400, "InvalidArgument"),
        InvalidPart: ErrorStatus(400, "InvalidPart"),
        InvalidPartOrder: ErrorStatus(400, "InvalidPartOrder"),
        EntityTooSmall: ErrorStatus(400, "EntityTooSmall"),
        RangeNotSatisfiable: ErrorStatus(416, "InvalidRange"),
        PreconditionFailed: ErrorStatus(412, "PreconditionFailed"),
        AlreadyExists: ErrorStatus(412, "PreconditionFailed"),
        IntegrityError: ErrorStatus(422, "BadDigest"),
        QuotaExceeded: ErrorStatus(413, "QuotaExceeded"),
        ObjectTooLarge: ErrorStatus(413, "EntityTooLarge"),
        Unauthorized: ErrorStatus(401, "AccessDenied"),
        Forbidden: ErrorStatus(403, "AccessDenied"),
        ConfigurationError: ErrorStatus(500, "InternalError"),
        StorageUnreachable: ErrorStatus(500, "InternalError"),
        StorageUnavailable: ErrorStatus(503, "ServiceUnavailable"),
        ObjectMissing: ErrorStatus(500, "InternalError"),
        UnsafePath: ErrorStatus(500, "InternalError"),
    }
)


def status_of(error: type[BaseException]) -> ErrorStatus | None:
    """The entry of ``error``'s nearest class in :data:`STATUS`; None for an error outside the tree."""
    for cls in error.__mro__:
        if issubclass(cls, BlobStoreError) and cls in STATUS:
            return STATUS[cls]
    return None
