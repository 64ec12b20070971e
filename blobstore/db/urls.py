"""Database URLs as users write them, turned into what the async drivers accept.

Users write PostgreSQL URLs the libpq way (``?sslmode=require&sslrootcert=…``);
asyncpg takes one ``ssl`` argument instead (a mode name or an SSL context).
``?pooler=transaction`` says a transaction-mode connection pooler (pgbouncer)
stands between blobstore and PostgreSQL; it becomes driver arguments too.
"""

from __future__ import annotations

import ssl
from typing import Any

from sqlalchemy.engine import URL, make_url

#: libpq's sslmode values, in order of strictness.
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
#: libpq options naming certificate files.
_SSL_FILES = ("sslrootcert", "sslcert", "sslkey")
#: The options blobstore reads from a PostgreSQL URL itself (no driver or server sees them).
OWN_OPTIONS = ("sslmode", *_SSL_FILES, "pooler")

#: asyncpg and SQLAlchemy arguments under which every statement works through a transaction-mode pooler
#: (pgbouncer before 1.21), which may hand each transaction, or each statement outside one, another server
#: connection: no statement is kept prepared under a name (neither in asyncpg's cache nor in SQLAlchemy's),
#: each is prepared unnamed and run before the server connection can go back to the pool. Each statement
#: then takes two round trips instead of one, so this is not the default.
_TRANSACTION_POOLER = {
    "statement_cache_size": 0,
    "prepared_statement_cache_size": 0,
    "prepared_statement_name_func": lambda: "",
}


def split_options(url: str) -> tuple[URL, dict[str, Any]]:
    """Return ``url`` without blobstore's own options (:data:`OWN_OPTIONS`), and the asyncpg ``connect()``
    arguments they mean.

    Raises ValueError for an sslmode libpq does not know, or a pooler other than ``transaction``.
    """
    parsed = make_url(url)
    query = dict(parsed.query)
    arguments = {**_ssl_arguments(query), **_pooler_arguments(query)}
    return (parsed.set(query=query) if arguments else parsed), arguments


def _ssl_arguments(query: dict[str, Any]) -> dict[str, Any]:
    """Pop libpq's SSL options from ``query``; asyncpg's ``ssl`` argument for them."""
    mode = query.pop("sslmode", None)
    files = {name: query.pop(name) for name in _SSL_FILES if name in query}
    if mode is None and not files:
        return {}
    mode = str(mode or "prefer")
    if mode not in SSL_MODES:
        raise ValueError(f"unknown sslmode {mode!r}; use one of {', '.join(SSL_MODES)}")
    if not files or mode in ("disable", "allow", "prefer"):
        return {"ssl": mode}
    return {"ssl": _ssl_context(mode, {name: str(value) for name, value in files.items()})}


def _pooler_arguments(query: dict[str, Any]) -> dict[str, Any]:
    """Pop ``pooler`` from ``query``; the driver arguments it means."""
    pooler = query.pop("pooler", None)
    if pooler is None:
        return {}
    if pooler != "transaction":
        raise ValueError(
            f"unknown pooler {pooler!r}; use pooler=transaction for a pooler in transaction mode "
            "(a pooler in session mode needs nothing)"
        )
    return dict(_TRANSACTION_POOLER)


def _ssl_context(mode: str, files: dict[str, str]) -> ssl.SSLContext:
    """An SSL context for ``require``/``verify-ca``/``verify-full`` with libpq's certificate files.

    As in libpq, ``require`` with a root certificate verifies the server like ``verify-ca``.
    """
    context = ssl.create_default_context(cafile=files.get("sslrootcert"))
    context.check_hostname = mode == "verify-full"
    if mode == "require" and "sslrootcert" not in files:
        context.verify_mode = ssl.CERT_NONE
    if "sslcert" in files:
        context.load_cert_chain(files["sslcert"], files.get("sslkey"))
    return context
