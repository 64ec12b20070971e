"""S3 errors: the protocol's own (signatures, buckets, operations not implemented), and every blobstore error
answered by its ``s3_code`` in blobstore.errors.STATUS, at the HTTP status S3 gives that code."""

from __future__ import annotations

from starlette.exceptions import HTTPException

from blobstore.errors import BlobStoreError, status_of

#: The HTTP status of each S3 error code this API answers with (S3 API reference, "Error responses").
S3_STATUS = {
    "AccessDenied": 403,
    "AuthorizationHeaderMalformed": 400,
    "AuthorizationQueryParametersError": 400,
    "BadDigest": 400,
    "BucketAlreadyOwnedByYou": 409,
    "BucketNotEmpty": 409,
    "EntityTooLarge": 400,
    "EntityTooSmall": 400,
    "IncompleteBody": 400,
    "InternalError": 500,
    "InvalidAccessKeyId": 403,
    "InvalidArgument": 400,
    "InvalidPart": 400,
    "InvalidPartOrder": 400,
    "InvalidPartNumber": 416,
    "InvalidBucketName": 400,
    "InvalidDigest": 400,
    "InvalidRange": 416,
    "InvalidRequest": 400,
    "InvalidStorageClass": 400,
    "KeyTooLongError": 400,
    "MalformedXML": 400,
    "MethodNotAllowed": 405,
    "MissingSecurityHeader": 400,
    "NoSuchBucket": 404,
    "NoSuchKey": 404,
    "NoSuchLifecycleConfiguration": 404,
    "NoSuchUpload": 404,
    "NotImplemented": 501,
    "PreconditionFailed": 412,
    "QuotaExceeded": 403,
    "RequestTimeTooSkewed": 403,
    "RequestTimeout": 400,
    "ServiceUnavailable": 503,
    "SignatureDoesNotMatch": 403,
    "XAmzContentSHA256Mismatch": 400,
}


class S3Error(Exception):
    """An answer of the S3 API: ``code`` (a key of :data:`S3_STATUS`) and a message for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def status(self) -> int:
        return S3_STATUS[self.code]


def not_implemented(operation: str) -> S3Error:
    """The 501 of an operation this API does not offer (docs/s3-api.md lists what it does)."""
    return S3Error("NotImplemented", f"{operation} is not implemented by blobstore's S3 API")


def translate(error: BaseException) -> S3Error:
    """The S3 answer of ``error``: itself if it is one, its STATUS entry if it is a blobstore error, RequestTimeout
    for the 408 of a body that stopped arriving, else InternalError (whose message reveals nothing)."""
    if isinstance(error, S3Error):
        return error
    if isinstance(error, HTTPException) and error.status_code == 408:  # the body timeout (blobstore serve)
        return S3Error("RequestTimeout", str(error.detail))
    entry = status_of(type(error)) if isinstance(error, BlobStoreError) else None
    if entry is None or entry.s3_code == "InternalError":
        return S3Error("InternalError", "we encountered an internal error; please try again")
    return S3Error(entry.s3_code, str(error))
