"""Secrets the database keeps (URL signing keys, the S3 API's secret access keys), sealed with a key it lacks.

A copy of the database alone (a dump, a backup, a stolen file) holds no usable
secret. The sealing key is derived (HKDF-SHA256) from ``BLOBSTORE_SECRET_KEY``,
which every server of a store must share. Without that variable:

* a SQLite store keeps a random secret in ``secret.key`` in BLOBSTORE_HOME,
  created 0600 on first use (a SQLite database lives on one machine: its
  processes share the file; copy its content into BLOBSTORE_SECRET_KEY to move on);
* an in-memory store uses one random secret per process (its database dies with it);
* any other database cannot seal or open anything: ConfigurationError naming the
  variable, never a per-machine key with which servers would reject each other's URLs.

A sealed value is ``v1.`` and the base64url of a random 96-bit nonce and the
AES-256-GCM ciphertext. Each is sealed for one ``purpose`` (its row, such as
``signing-key:<id>``), bound as associated data: moved to another row it does not open.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from blobstore.errors import ConfigurationError

if TYPE_CHECKING:
    from blobstore.core.config import Settings

VARIABLE = "BLOBSTORE_SECRET_KEY"
KEY_FILE = "secret.key"
_VERSION = "v1."
_NONCE_BYTES = 12
_HKDF_INFO = b"blobstore sealing key v1"
#: The secret of in-memory stores, whose sealed values die with the process anyway.
_PROCESS_SECRET = secrets.token_urlsafe(32)


def seal(settings: Settings, plaintext: bytes, purpose: str) -> str:
    """``plaintext`` sealed for ``purpose`` under the store's secret; ConfigurationError if it has none."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(_NONCE_BYTES)
    sealed = AESGCM(_sealing_key(settings)).encrypt(nonce, plaintext, purpose.encode())
    return _VERSION + base64.urlsafe_b64encode(nonce + sealed).decode()


def unseal(settings: Settings, sealed: str, purpose: str) -> bytes:
    """The plaintext of a value :func:`seal` made for ``purpose``; ConfigurationError if the store has no
    secret or not the one that sealed it (a server configured apart from the others)."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    key = _sealing_key(settings)
    try:
        raw = base64.urlsafe_b64decode(sealed.removeprefix(_VERSION))
        if not sealed.startswith(_VERSION) or len(raw) <= _NONCE_BYTES:
            raise ValueError(sealed)
        return AESGCM(key).decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], purpose.encode())
    except (InvalidTag, ValueError):
        raise ConfigurationError(
            f"{VARIABLE}: {purpose} was sealed with another secret than this process's "
            f"({_source(settings)}); every server of a store needs the same {VARIABLE}"
        ) from None


def _sealing_key(settings: Settings) -> bytes:
    return _derived(_secret(settings))


@functools.lru_cache(maxsize=8)
def _derived(secret: str) -> bytes:
    """The sealing key of ``secret`` (derived once per secret: every S3 request opens its access key's secret)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(secret.encode())


def _secret(settings: Settings) -> str:
    if settings.secret_key is not None:
        return settings.secret_key
    if settings.database_is_ephemeral:
        return _PROCESS_SECRET
    if settings.is_sqlite:
        return _key_file_secret(settings.home / KEY_FILE)
    raise ConfigurationError(
        f"{VARIABLE} is not set: a store whose database is not SQLite (BLOBSTORE_DATABASE_URL) needs it to sign "
        "and check URLs; give every server the same random value of at least 32 characters "
        "(python -c 'import secrets; print(secrets.token_urlsafe(32))')"
    )


def _source(settings: Settings) -> str:
    if settings.secret_key is not None:
        return VARIABLE
    if settings.database_is_ephemeral:
        return "a random secret of this process"
    return f"{settings.home / KEY_FILE}, as {VARIABLE} is unset"


def _key_file_secret(path: Path) -> str:
    """The secret in ``path``, created (0600, its directory 0700) with a random one if missing.

    The new file appears whole or not at all (written aside, then hard-linked into place), so processes
    starting together agree on one secret.
    """
    try:
        with contextlib.suppress(FileNotFoundError):
            return _read_key_file(path)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        aside = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
        descriptor = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "w") as out:
                out.write(secrets.token_urlsafe(32) + "\n")
                out.flush()
                os.fsync(out.fileno())
            with contextlib.suppress(FileExistsError):  # another process created it first: theirs holds
                os.link(aside, path)
            _fsync_directory(path.parent)
        finally:
            aside.unlink()
        return _read_key_file(path)
    except OSError as exc:
        raise ConfigurationError(f"{VARIABLE} is unset and the key file {path} is unusable: {exc.strerror}") from None


@functools.lru_cache(maxsize=8)
def _read_key_file(path: Path) -> str:
    """The secret in ``path``, read once per process (the file is created whole and never rewritten: every S3
    request opens its access key's secret)."""
    secret = path.read_text().strip()
    if len(secret) < 32:
        raise ConfigurationError(f"the key file {path} holds fewer than 32 characters; set {VARIABLE} instead")
    return secret


def _fsync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
