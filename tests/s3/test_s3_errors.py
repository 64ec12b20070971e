"""S3 error answers: every blobstore error has an S3 code with a status; unknown errors reveal nothing."""

from __future__ import annotations

from blobstore.errors import STATUS, NotFound, QuotaExceeded, StorageUnavailable
from blobstore.s3.errors import S3_STATUS, S3Error, translate


def test_every_s3_code_of_the_error_table_has_a_status() -> None:
    """Each ``s3_code`` in blobstore.errors.STATUS is answerable (a KeyError here would be a 500 in production)."""
    assert {entry.s3_code for entry in STATUS.values()} <= set(S3_STATUS)


def test_blobstore_errors_answer_with_their_s3_codes() -> None:
    """NotFound is 404 NoSuchKey, a quota breach 403 QuotaExceeded with its message, an outage 503."""
    assert (translate(NotFound("gone")).code, translate(NotFound("gone")).status) == ("NoSuchKey", 404)
    quota = translate(QuotaExceeded("acme would use 11 of 10 bytes"))
    assert (quota.code, quota.status, quota.message) == ("QuotaExceeded", 403, "acme would use 11 of 10 bytes")
    assert translate(StorageUnavailable("down")).status == 503


def test_an_unexpected_error_is_an_internal_error_that_says_nothing() -> None:
    """A bug's message (which may hold paths or SQL) never reaches the client."""
    error = translate(RuntimeError("SELECT secret FROM somewhere"))
    assert error.code == "InternalError"
    assert "secret" not in error.message
    assert translate(S3Error("NoSuchBucket", "x")).code == "NoSuchBucket"
