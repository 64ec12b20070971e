"""Settings: environment variables and CLI overrides turned into one validated object, in one step."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from blobstore.db.urls import split_options
from blobstore.errors import ConfigurationError
from blobstore.model.durations import UNITS as DURATION_UNITS

DedupScope = Literal["global", "tenant"]
Compression = Literal["auto", "off"]

_DB_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}

#: 5 GiB, the most one S3 PUT request may carry: the bound on one request's body, and on the spool it fills.
DEFAULT_MAX_OBJECT_SIZE = 5 * 2**30
#: How long an S3 multipart upload may sit untouched before GC aborts it (BLOBSTORE_MULTIPART_EXPIRY).
DEFAULT_MULTIPART_EXPIRY_SECONDS = 7 * 24 * 3600.0
#: The embedded default's home (BLOBSTORE_HOME), relative to the current directory, and its database file.
DEFAULT_HOME = ".blobstore"
DATABASE_FILE = "blobstore.db"
#: zstd's level 3: 3-5x on text at some 250 MB/s per core (BLOBSTORE_COMPRESSION_LEVEL).
DEFAULT_COMPRESSION_LEVEL = 3
#: The zstd levels BLOBSTORE_COMPRESSION_LEVEL may name.
MIN_COMPRESSION_LEVEL, MAX_COMPRESSION_LEVEL = 1, 19


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
    #: How long an upload stays protected from GC after its uploader last renewed its lease (it
    #: renews every third of this while bytes flow); only a dead uploader's upload outlives it.
    upload_lease_seconds: float = 60.0
    #: BLOBSTORE_SECRET_KEY: seals the secrets the database keeps (see blobstore.auth.sealing); never shown.
    secret_key: str | None = field(default=None, repr=False)
    #: The largest object a put may store (ObjectTooLarge beyond it, before any byte is stored).
    max_object_size: int = DEFAULT_MAX_OBJECT_SIZE
    #: BLOBSTORE_MULTIPART_EXPIRY: an S3 multipart upload untouched this long is aborted by GC.
    multipart_expiry_seconds: float = DEFAULT_MULTIPART_EXPIRY_SECONDS
    #: BLOBSTORE_COMPRESSION: ``auto`` compresses each frame with zstd where that pays; ``off`` never does.
    compression: Compression = "auto"
    #: BLOBSTORE_COMPRESSION_LEVEL: the zstd level, 1 to 19.
    compression_level: int = DEFAULT_COMPRESSION_LEVEL
    #: BLOBSTORE_SPOOL_DIR: where puts land while object storage is unreachable (docs/spool.md); None: off.
    spool_dir: Path | None = None
    #: BLOBSTORE_SPOOL_MAX_BYTES: the most the spool may hold; a put past it fails as it would without a spool.
    spool_max_bytes: int = 0
    #: BLOBSTORE_NODE_ID: this process's node, which owns the blobs spooled here (default: the host name).
    node_id: str = field(default_factory=socket.gethostname)
    #: BLOBSTORE_SPOOL_DRAIN_INTERVAL: how often a server tries to drain its spool (doubling up to 5 minutes
    #: while object storage stays unreachable).
    spool_drain_seconds: float = 10.0

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
        home = Path(env.get("BLOBSTORE_HOME") or DEFAULT_HOME).absolute()
        spool_dir, spool_max_bytes = _parse_spool(
            env.get("BLOBSTORE_SPOOL_DIR") or None, env.get("BLOBSTORE_SPOOL_MAX_BYTES") or None
        )
        db = database_url or env.get("BLOBSTORE_DATABASE_URL") or f"sqlite+aiosqlite:///{home / DATABASE_FILE}"
        storage = storage_url or env.get("BLOBSTORE_STORAGE_URL") or (home / "blobs").as_uri()
        return cls(
            home=home,
            database_url=normalize_database_url(db),
            storage_url=storage,
            s3_endpoint_url=env.get("BLOBSTORE_S3_ENDPOINT_URL") or None,
            s3_region=env.get("BLOBSTORE_S3_REGION") or "us-east-1",
            dedup_scope=_parse_scope(env.get("BLOBSTORE_DEDUP_SCOPE") or "global"),
            gc_grace_seconds=_parse_grace(env.get("BLOBSTORE_GC_GRACE") or "3600"),
            secret_key=_parse_secret_key(env.get("BLOBSTORE_SECRET_KEY") or None),
            max_object_size=_parse_max_object_size(env.get("BLOBSTORE_MAX_OBJECT_SIZE") or None),
            multipart_expiry_seconds=_parse_multipart_expiry(env.get("BLOBSTORE_MULTIPART_EXPIRY") or "7d"),
            compression=_parse_compression(env.get("BLOBSTORE_COMPRESSION") or "auto"),
            compression_level=_parse_compression_level(env.get("BLOBSTORE_COMPRESSION_LEVEL") or None),
            spool_dir=spool_dir,
            spool_max_bytes=spool_max_bytes,
            spool_drain_seconds=_parse_drain_interval(env.get("BLOBSTORE_SPOOL_DRAIN_INTERVAL") or "10"),
            node_id=_parse_node_id(env.get("BLOBSTORE_NODE_ID") or socket.gethostname()),
        )

    @property
    def frame_level(self) -> int | None:
        """The zstd level frames are compressed at where that pays; None if compression is off."""
        return None if self.compression == "off" else self.compression_level

    @property
    def is_sqlite(self) -> bool:
        """True for the embedded SQLite database."""
        return self.database_url.startswith("sqlite+aiosqlite:")

    @property
    def database_is_ephemeral(self) -> bool:
        """True for an in-memory SQLite database, which vanishes with the process."""
        return self.is_sqlite and make_url(self.database_url).database in (None, "", ":memory:")

    @property
    def sqlite_file(self) -> Path | None:
        """The file of the embedded SQLite database (a ``file:`` URI's path too); None for anything else."""
        if not self.is_sqlite or self.database_is_ephemeral:
            return None
        return Path((make_url(self.database_url).database or "").removeprefix("file:"))

    def check_durability(self) -> None:
        """Refuse a database and a storage of which only one outlives the process.

        Either side alone in memory acknowledges puts that the next process cannot
        honour: bytes vanish under surviving references, or objects outlive every record of them.
        """
        storage_is_ephemeral = self.storage_url.startswith("memory:")
        if storage_is_ephemeral and not self.database_is_ephemeral:
            raise ConfigurationError(
                "BLOBSTORE_STORAGE_URL: memory:// storage loses its objects when the process ends while the "
                "database (BLOBSTORE_DATABASE_URL) keeps their references; pair it with sqlite+aiosqlite:///:memory:"
            )
        if self.database_is_ephemeral and not storage_is_ephemeral:
            raise ConfigurationError(
                "BLOBSTORE_DATABASE_URL: an in-memory database forgets every reference when the process ends "
                "while the storage (BLOBSTORE_STORAGE_URL) keeps the objects; use a database file, or memory://"
            )


def normalize_database_url(url: str) -> str:
    """Return ``url`` with its async driver made explicit (``postgresql://`` becomes ``postgresql+asyncpg://``)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in _DB_DRIVERS:
        shown = f"{scheme}://…" if sep else "(no scheme)"
        raise ConfigurationError(
            f"BLOBSTORE_DATABASE_URL: unsupported database URL {shown}; "
            "use sqlite+aiosqlite:///path or postgresql+asyncpg://user@host/db"
        )
    normalized = f"{_DB_DRIVERS[scheme]}://{rest}"
    try:
        port = make_url(normalized).port
    except ArgumentError:
        raise ConfigurationError("BLOBSTORE_DATABASE_URL: the database URL cannot be parsed") from None
    except ValueError:
        raise ConfigurationError("BLOBSTORE_DATABASE_URL: the port is not a number") from None
    if port is not None and not 0 < port < 65536:
        raise ConfigurationError(f"BLOBSTORE_DATABASE_URL: port {port} is out of range (1-65535)")
    try:
        split_options(normalized)
    except ValueError as exc:
        raise ConfigurationError(f"BLOBSTORE_DATABASE_URL: {exc}") from None
    return normalized


def _parse_scope(value: str) -> DedupScope:
    if value == "global":
        return "global"
    if value == "tenant":
        return "tenant"
    raise ConfigurationError(f"BLOBSTORE_DEDUP_SCOPE must be 'global' or 'tenant', not {value!r}")


#: The longest grace period: ten years (longer ones overflow date arithmetic in some databases).
MAX_GC_GRACE_SECONDS = 10 * 365 * 24 * 3600


def _parse_grace(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= MAX_GC_GRACE_SECONDS:
        raise ConfigurationError(
            f"BLOBSTORE_GC_GRACE must be a number of seconds from 0 to {MAX_GC_GRACE_SECONDS} (ten years), "
            f"not {value!r}"
        )
    return seconds


def _parse_multipart_expiry(value: str) -> float:
    """A duration: seconds, or a number with one unit of ``s``, ``m``, ``h``, ``d`` (``7d``, ``36h``)."""
    number, unit = (value[:-1], DURATION_UNITS[value[-1]]) if value[-1:] in DURATION_UNITS else (value, 1)
    try:
        seconds = float(number) * unit
    except ValueError:
        seconds = 0.0
    if not 0 < seconds <= MAX_GC_GRACE_SECONDS:
        raise ConfigurationError(
            "BLOBSTORE_MULTIPART_EXPIRY must be a duration above 0 and at most ten years: seconds, or a number "
            f"with a unit of s, m, h, d or w (7d), not {value!r}"
        )
    return seconds


def _parse_max_object_size(value: str | None) -> int:
    if value is None:
        return DEFAULT_MAX_OBJECT_SIZE
    size = int(value) if value.isascii() and value.isdecimal() and len(value) <= 19 else 0
    if not 0 < size < 2**63:
        raise ConfigurationError(
            f"BLOBSTORE_MAX_OBJECT_SIZE must be a whole number of bytes from 1 to {2**63 - 1}, not {value!r}"
        )
    return size


def _parse_compression(value: str) -> Compression:
    if value == "auto":
        return "auto"
    if value == "off":
        return "off"
    raise ConfigurationError(f"BLOBSTORE_COMPRESSION must be 'auto' or 'off', not {value!r}")


def _parse_compression_level(value: str | None) -> int:
    if value is None:
        return DEFAULT_COMPRESSION_LEVEL
    level = int(value) if value.isascii() and value.isdecimal() and len(value) <= 2 else 0
    if not MIN_COMPRESSION_LEVEL <= level <= MAX_COMPRESSION_LEVEL:
        raise ConfigurationError(
            f"BLOBSTORE_COMPRESSION_LEVEL must be a whole number from {MIN_COMPRESSION_LEVEL} to "
            f"{MAX_COMPRESSION_LEVEL}, not {value!r}"
        )
    return level


def _parse_secret_key(value: str | None) -> str | None:
    if value is not None and len(value) < 32:
        raise ConfigurationError("BLOBSTORE_SECRET_KEY must be at least 32 characters (use a random value)")
    return value


#: The longest node id (the width of ``blobs.spooled_on``).
MAX_NODE_ID_LENGTH = 64


def _parse_spool(directory: str | None, max_bytes: str | None) -> tuple[Path | None, int]:
    """The spool's settings: both variables set, or neither (the spool is off)."""
    if directory is None and max_bytes is None:
        return None, 0
    if directory is None or max_bytes is None:
        missing = "BLOBSTORE_SPOOL_DIR" if directory is None else "BLOBSTORE_SPOOL_MAX_BYTES"
        raise ConfigurationError(
            f"{missing} is not set: a spool needs both BLOBSTORE_SPOOL_DIR and BLOBSTORE_SPOOL_MAX_BYTES"
        )
    size = int(max_bytes) if max_bytes.isascii() and max_bytes.isdecimal() and len(max_bytes) <= 19 else 0
    if not 0 < size < 2**63:
        raise ConfigurationError(
            f"BLOBSTORE_SPOOL_MAX_BYTES must be a whole number of bytes from 1 to {2**63 - 1}, not {max_bytes!r}"
        )
    return Path(directory).absolute(), size


def _parse_drain_interval(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds <= 3600:
        raise ConfigurationError(
            f"BLOBSTORE_SPOOL_DRAIN_INTERVAL must be a number of seconds above 0 and at most 3600, not {value!r}"
        )
    return seconds


def _parse_node_id(value: str) -> str:
    if not value.isprintable() or value.strip() != value or len(value) > MAX_NODE_ID_LENGTH:
        raise ConfigurationError(
            f"BLOBSTORE_NODE_ID must be at most {MAX_NODE_ID_LENGTH} printable characters without surrounding "
            f"spaces, not {value!r}"
        )
    return value
