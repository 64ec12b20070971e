"""Database URLs as users write them, turned into what the async drivers accept.

Users write PostgreSQL URLs the libpq way (``?sslmode=require&sslrootcert=…``);
asyncpg takes one ``ssl`` argument instead (a mode name or an SSL context).
"""

from __future__ import annotations

import ssl
from typing import Any

from sqlalchemy.engine import URL, make_url

#: libpq's sslmode values, in order of strictness.
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
#: libpq options naming certificate files.
_SSL_FILES = ("sslrootcert", "sslcert", "sslkey")


def split_ssl_options(url: str) -> tuple[URL, dict[str, Any]]:
    """Return ``url`` without its libpq SSL options, and the asyncpg ``connect()`` arguments they mean.

    Raises ValueError for an sslmode libpq does not know.
    """
    parsed = make_url(url)
    query = dict(parsed.query)
    mode = query.pop("sslmode", None)
    files = {name: query.pop(name) for name in _SSL_FILES if name in query}
    if mode is None and not files:
        return parsed, {}
    mode = str(mode or "prefer")
    if mode not in SSL_MODES:
        raise ValueError(f"unknown sslmode {mode!r}; use one of {', '.join(SSL_MODES)}")
    stripped = parsed.set(query=query)
    if not files or mode in ("disable", "allow", "prefer"):
        return stripped, {"ssl": mode}
    return stripped, {"ssl": _ssl_context(mode, {name: str(value) for name, value in files.items()})}


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
