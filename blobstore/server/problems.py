"""Errors at the HTTP boundary, rendered as RFC 9457 problem documents.

Every failure of a request, whatever raised it, leaves as ``application/problem+json``
with ``type``, ``title``, ``status``, ``detail`` and ``code`` (the error class name,
which ``blobstore.client`` maps back to the same class). The status comes from the
one table, :data:`blobstore.errors.STATUS`; anything outside the error tree is a 500.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match

from blobstore import errors
from blobstore.errors import (
    BlobStoreError,
    ConfigurationError,
    InvalidInput,
    QuotaExceeded,
    RangeNotSatisfiable,
    StorageUnavailable,
    Unauthorized,
)
from blobstore.wire import ERROR_CODE, PROBLEM_TYPE

log = logging.getLogger(__name__)

#: Seconds a client should wait before retrying after StorageUnavailable.
RETRY_AFTER = 1

_INTERNAL = 500
#: Errors whose messages describe the deployment (the database URL, storage paths, buckets, settings). Raised
#: while serving a request, they reach the caller as this generic detail; the server log gets the message.
_DEPLOYMENT_DETAILS: dict[type[Exception], str] = {
    StorageUnavailable: f"the database or the object storage is unavailable; retry after {RETRY_AFTER} s",
    ConfigurationError: "the server is misconfigured; the error is in its log",
}
#: The methods a 405's ``Allow`` may name, in the order it names them.
_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    type: str = Field(description="urn:blobstore:error:<code>")
    title: str = Field(description="What kind of error this is.")
    status: int = Field(description="The HTTP status code.")
    detail: str = Field(description="What went wrong with this request.")
    code: str = Field(description="The Python error class: NotFound, InvalidKey, QuotaExceeded, ...")


def status_of(exc: BaseException) -> int:
    """The HTTP status of an error, from :data:`blobstore.errors.STATUS` (500 for anything outside the tree)."""
    entry = errors.status_of(type(exc))
    return _INTERNAL if entry is None else entry.status


def problem_response(exc: BaseException, *, detail: str | None = None) -> JSONResponse:
    """The problem document for ``exc``, with the headers its class calls for; its detail is ``detail`` if
    given, else the message of ``exc`` (which the caller will read: see :func:`unavailable`)."""
    status = status_of(exc)
    if not isinstance(exc, BlobStoreError):
        return _problem(status, "InternalError", "Internal error", "the server failed; the error is in its log")
    code = type(exc).__name__
    title = (type(exc).__doc__ or code).strip().splitlines()[0]
    return _problem(status, code, title, str(exc) if detail is None else detail, headers_for(exc))


def unavailable(reason: str, cause: BaseException | None = None) -> JSONResponse:
    """A 503 StorageUnavailable problem whose detail is ``reason``, which must name no address; ``cause``
    (whose message may) goes to the server log."""
    if cause is not None:
        log.warning("%s: %s", reason, cause)
    return problem_response(StorageUnavailable(reason))


def _problem(status: int, code: str, title: str, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = Problem(type=f"urn:blobstore:error:{code}", title=title, status=status, detail=detail, code=code)
    # The code also rides in a header, so the body-less answer to a HEAD still names the error.
    headers = {**(headers or {}), ERROR_CODE: code}
    return JSONResponse(body.model_dump(), status_code=status, headers=headers, media_type=PROBLEM_TYPE)


def headers_for(exc: BaseException) -> dict[str, str]:
    """The headers an answer with ``exc`` carries besides its code (WWW-Authenticate, Retry-After, ...)."""
    if isinstance(exc, Unauthorized):
        return {"www-authenticate": 'Bearer realm="blobstore"'}
    if isinstance(exc, StorageUnavailable):
        return {"retry-after": str(RETRY_AFTER)}
    if isinstance(exc, RangeNotSatisfiable) and exc.size is not None:
        return {"content-range": f"bytes */{exc.size}"}
    if isinstance(exc, QuotaExceeded):  # the body may be refused unread: closing stops its upload, not reading it
        return {"connection": "close"}
    return {}


async def _on_error(request: Request, exc: Exception) -> JSONResponse:
    internal = status_of(exc) == _INTERNAL
    if internal:
        log.error("request failed", exc_info=exc)
    for cls, detail in _DEPLOYMENT_DETAILS.items():
        if isinstance(exc, cls):
            if not internal:
                log.warning("%s %s failed: %s", request.method, request.url.path, exc)
            return problem_response(exc, detail=detail)
    return problem_response(exc)


async def _on_client_disconnect(_request: Request, _exc: Exception) -> JSONResponse:
    return problem_response(InvalidInput("the client closed the connection before its request was read"))


async def _on_validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    where = "; ".join(
        f"{'.'.join(str(part) for part in error.get('loc', ()))}: {error.get('msg', 'invalid')}"
        for error in exc.errors()
    )
    return problem_response(InvalidInput(f"invalid request: {where}"))


async def _on_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = {404: "NotFound", 405: "MethodNotAllowed", 408: "RequestTimeout"}.get(exc.status_code, "InvalidInput")
    headers = {name.lower(): value for name, value in (exc.headers or {}).items()}
    if exc.status_code == 405:
        headers["allow"] = ", ".join(_allowed_methods(request))
    return _problem(exc.status_code, code, str(exc.detail), str(exc.detail), headers)


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app answers on the request's path, not only those of the first route
    that matched it. Each method is tried as a whole match (routes of included routers nest, and only
    ``matches`` sees through them)."""
    return [
        method
        for method in _METHODS
        if any(route.matches({**request.scope, "method": method})[0] == Match.FULL for route in request.app.routes)
    ]


def install(app: FastAPI) -> None:
    """Make ``app`` answer every error with a problem document."""
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(HTTPException, _on_http_exception)
    app.add_exception_handler(ClientDisconnect, _on_client_disconnect)
    # Answered where they are raised; only unexpected errors reach the last resort, Exception.
    app.add_exception_handler(BlobStoreError, _on_error)
    app.add_exception_handler(Exception, _on_error)


#: OpenAPI ``responses`` entries for the error statuses of an operation.
def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The documented problem responses with these statuses (401, 403 and 503 are always possible)."""
    wanted = sorted({400, 401, 403, 503, *statuses})
    return {
        status: {"model": Problem, "content": {PROBLEM_TYPE: {}}, "description": _description(status)}
        for status in wanted
    }


def _description(status: int) -> str:
    """What a status means, and the codes that answer with it (from the table)."""
    codes = ", ".join(cls.__name__ for cls, entry in errors.STATUS.items() if entry.status == status)
    return f"{_DESCRIPTIONS[status]} ({codes})"


_DESCRIPTIONS = {
    400: "Invalid input",
    401: "Missing, malformed, expired or revoked token",
    403: "The token is not for this tenant or lacks the scope",
    404: "No such key",
    412: "A precondition failed",
    413: "A tenant quota or the maximum object size would be exceeded",
    416: "The range is not satisfiable",
    422: "Bytes do not match their digest",
    503: "Storage or database unavailable; retry after Retry-After",
}
