"""Settings: environment variables and CLI overrides turned into one validated object, in one step."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from blobstore.errors import ConfigurationError

DedupScope = Literal["global", "tenant"]

_DB_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}


@dataclass(frozen=True)
class Settings:
    """Everything a :class:`~blobstore.BlobStore` needs to open."""

    home: Path
    database_url: str
    storage_url: str
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    dedup_scope: DedupScope = "global"
    gc_grace_seconds: float = 3600.0

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        database_url: str | None = None,
        storage_url: str | None = None,
    ) -> Settings:
        """Read ``BLOBSTORE_*`` variables; explicit arguments (the CLI's ``--db``/``--storage``) win."""
        env = os.environ if environ is None else environ
        home = Path(env.get("BLOBSTORE_HOME") or ".blobstore").absolute()
        db = database_url or env.get("BLOBSTORE_DATABASE_URL") or f"sqlite+aiosqlite:///{home / 'blobstore.db'}"
        storage = storage_url or env.get("BLOBSTORE_STORAGE_URL") or (home / "blobs").as_uri()
        return cls(
            home=home,
            database_url=normalize_database_url(db),
            storage_url=storage,
            s3_endpoint_url=env.get("BLOBSTORE_S3_ENDPOINT_URL") or None,
            s3_region=env.get("BLOBSTORE_S3_REGION") or "us-east-1",
            dedup_scope=_parse_scope(env.get("BLOBSTORE_DEDUP_SCOPE") or "global"),
            gc_grace_seconds=_parse_grace(env.get("BLOBSTORE_GC_GRACE") or "3600"),
        )

    @property
    def is_sqlite(self) -> bool:
        """True for the embedded SQLite database."""
        return self.database_url.startswith("sqlite+aiosqlite:")


def normalize_database_url(url: str) -> str:
    """Return ``url`` with its async driver made explicit (``postgresql://`` becomes ``postgresql+asyncpg://``)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in _DB_DRIVERS:
        shown = f"{scheme}://…" if sep else "(no scheme)"
        raise ConfigurationError(
            f"BLOBSTORE_DATABASE_URL: unsupported database URL {shown}; "
            "use sqlite+aiosqlite:///path or postgresql+asyncpg://user@host/db"
        )
    return f"{_DB_DRIVERS[scheme]}://{rest}"


def _parse_scope(value: str) -> DedupScope:
    if value == "global":
        return "global"
    if value == "tenant":
        return "tenant"
    raise ConfigurationError(f"BLOBSTORE_DEDUP_SCOPE must be 'global' or 'tenant', not {value!r}")


def _parse_grace(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:
        raise ConfigurationError(f"BLOBSTORE_GC_GRACE must be a number of seconds >= 0, not {value!r}")
    return seconds
