"""Tables of the metadata database.

``blobs`` holds one row per stored object. Its ``state`` moves one way::

    uploading --(upload done, committed)--> live --(refcount 0 past grace, GC)--> deleting --> row gone
        \\______________(upload abandoned or lost a race)______________________/

A reference may point only at a ``live`` blob, and only a blob whose refcount is
0 can leave ``live``; docs/gc-protocol.md argues why no interleaving loses data.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    TypeDecorator,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from blobstore.model.keys import MAX_KEY_BYTES

#: Keys sort and compare by code point (byte order of UTF-8) on both databases,
#: so a prefix is a contiguous index range.
KeyString = String(MAX_KEY_BYTES).with_variant(String(MAX_KEY_BYTES, collation="C"), "postgresql")
#: Object keys sort by code point too, so fsck can walk them in step with a storage listing.
ObjectKeyString = String(200).with_variant(String(200, collation="C"), "postgresql")
#: Integer primary keys that autoincrement on both databases.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC as a naive timestamp; always returns timezone-aware UTC datetimes."""

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class StoreMeta(Base):
    """Facts about the store itself, such as the id that pairs this database with its storage."""

    __tablename__ = "store_meta"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))


class Tenant(Base):
    """A tenant with its usage counters and optional quota limits."""

    __tablename__ = "tenants"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    used_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    used_objects: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    max_bytes: Mapped[int | None] = mapped_column(BigInteger)
    max_objects: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Blob(Base):
    """One stored object: its digest, size, storage key, lifecycle state and reference count."""

    __tablename__ = "blobs"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(64))
    digest: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    object_key: Mapped[str] = mapped_column(ObjectKeyString, unique=True)
    state: Mapped[str] = mapped_column(String(16))
    refcount: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    unreferenced_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: While ``uploading``: the uploader renews this as bytes flow; GC reclaims the upload only after it passes.
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: The frame index of the object (blobstore.storage.frames), recorded once it is written, before it goes
    #: live; NULL for an object stored before frames, which is the blob's bytes, raw.
    frames: Mapped[bytes | None] = mapped_column(LargeBinary)
    #: The stored object's length (its frames, compressed or not); NULL with ``frames``: ``size``.
    stored_size: Mapped[int | None] = mapped_column(BigInteger)
    #: The node (BLOBSTORE_NODE_ID) whose spool holds the object while object storage was unreachable; NULL
    #: once the object is in object storage (docs/spool.md).
    spooled_on: Mapped[str | None] = mapped_column(String(64))
    #: The S3 storage class the object is in (blobstore.maintenance.transitions); NULL: STANDARD.
    storage_class: Mapped[str | None] = mapped_column(String(32))
    #: Midnight (UTC) of the day of the blob's latest recorded read, by any tenant; NULL: none recorded.
    last_read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: The class a move began copying the object to; NULL once the catalog recorded it. A run that finds it
    #: set moves the object again (the copy may or may not have happened).
    moving_to: Mapped[str | None] = mapped_column(String(32))

    __table_args__ = (
        Index(
            "uq_blobs_live_scope_digest",
            "scope",
            "digest",
            unique=True,
            sqlite_where=text("state = 'live'"),
            postgresql_where=text("state = 'live'"),
        ),
        Index("ix_blobs_digest", "digest"),
        Index("ix_blobs_state_unreferenced_since", "state", "unreferenced_since"),
        Index("ix_blobs_spooled_on", "spooled_on"),
    )


class Ref(Base):
    """A tenant's logical key pointing at a live blob."""

    __tablename__ = "refs"
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    key: Mapped[str] = mapped_column(KeyString, primary_key=True)
    blob_id: Mapped[int] = mapped_column(ForeignKey("blobs.id"))
    size: Mapped[int] = mapped_column(BigInteger)
    content_type: Mapped[str | None] = mapped_column(String(255))
    user_metadata: Mapped[dict[str, str]] = mapped_column("metadata", JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: Response headers stored through the S3 API (Content-Disposition, Cache-Control, ...), by lowercase name.
    headers: Mapped[dict[str, str]] = mapped_column(JSON, default=dict, server_default=text("'{}'"))
    #: When the key expires by its own put's ``expires_in`` (blobstore.maintenance.lifecycle); NULL: by rules only.
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)

    #: By blob, then tenant; ``size`` rides along so cost reports read this index alone (blobstore.accounting.report).
    __table_args__ = (Index("ix_refs_blob_id_tenant_id_size", "blob_id", "tenant_id", "size"),)


class LifecycleRule(Base):
    """A tenant's lifecycle rule of the keys under ``prefix`` (blobstore.maintenance.lifecycle): they expire
    ``expire_after`` seconds after they were last written, and S3 multipart uploads of them untouched for
    ``abort_multipart_after`` seconds are aborted (NULL: never). At most one rule per prefix; the longest
    matching prefix decides."""

    __tablename__ = "lifecycle_rules"
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    prefix: Mapped[str] = mapped_column(KeyString, primary_key=True)
    expire_after: Mapped[int | None] = mapped_column(BigInteger)
    abort_multipart_after: Mapped[int | None] = mapped_column(BigInteger)
    #: Seconds after which the keys' blobs may move to ``storage_class`` if cold (blobstore.maintenance.transitions).
    transition_after: Mapped[int | None] = mapped_column(BigInteger)
    storage_class: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Egress(Base):
    """Bytes a tenant read, per UTC day: one row per (tenant, day), added to by one upsert per read."""

    __tablename__ = "egress"
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    bytes: Mapped[int] = mapped_column(BigInteger)


class Token(Base):
    """An API token of one tenant: only a hash of its secret is kept (see blobstore.auth.tokens)."""

    __tablename__ = "tokens"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(63), index=True)
    name: Mapped[str | None] = mapped_column(String(255))
    scopes: Mapped[str] = mapped_column(String(64))
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SigningKey(Base):
    """An HMAC key for signed URLs, shared by every server of the store (see blobstore.auth.signing).

    The secret is sealed (blobstore.auth.sealing): the database alone cannot sign. The newest key not
    superseded signs; every key verifies until it was superseded longer ago than a URL may live, or
    until an operator retires it (deletes its row).
    """

    __tablename__ = "signing_keys"
    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    sealed_secret: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    superseded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AccessKey(Base):
    """An S3 access key of one tenant (see blobstore.auth.access_keys).

    SigV4 needs the plain secret on the server, so it is sealed (blobstore.auth.sealing), never hashed: the
    database alone holds no usable secret.
    """

    __tablename__ = "access_keys"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(63), index=True)
    name: Mapped[str | None] = mapped_column(String(255))
    scopes: Mapped[str] = mapped_column(String(64))
    sealed_secret: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Bucket(Base):
    """An S3 bucket of one tenant: its objects are the tenant's keys under ``<name>/`` (see blobstore.buckets).

    Names are unique per tenant, not per store: two tenants may each own a bucket ``uploads``.
    """

    __tablename__ = "buckets"
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ETag(Base):
    """The MD5 of bytes a tenant wrote through the S3 API, by BLAKE3 digest: the ETag S3 clients expect.

    Per tenant, so whether another tenant wrote the same bytes through S3 never shows in a tenant's ETags.
    """

    __tablename__ = "etags"
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: Hex MD5, or for a multipart upload's bytes the hex MD5 of its parts' MD5s and ``-N`` (N parts).
    md5: Mapped[str] = mapped_column(String(40))
    #: A multipart upload's bytes: the size of each of its N parts, in order (GetObject ``?partNumber``).
    part_sizes: Mapped[list[int] | None] = mapped_column(JSON)


class MultipartUpload(Base):
    """An S3 multipart upload in progress: the object it will become once completed (see blobstore.multipart).

    Its id is a random URL-safe token; ``touched_at`` moves with every part, and GC aborts an upload untouched
    for longer than BLOBSTORE_MULTIPART_EXPIRY. A completed upload keeps its row, without parts, ``completed_at``
    set (the moment its key was bound) with the ``digest`` and S3 ``etag`` of what it made, so a retried
    completion is answered again; GC forgets it once as old as an expired upload.
    """

    __tablename__ = "multipart_uploads"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    bucket: Mapped[str] = mapped_column(String(63))
    key: Mapped[str] = mapped_column(KeyString)
    content_type: Mapped[str | None] = mapped_column(String(255))
    user_metadata: Mapped[dict[str, str]] = mapped_column("metadata", JSON)
    #: The response headers the object will store (blobstore.db.models.Ref.headers).
    headers: Mapped[dict[str, str]] = mapped_column(JSON, default=dict, server_default=text("'{}'"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    touched_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    digest: Mapped[str | None] = mapped_column(String(64))
    etag: Mapped[str | None] = mapped_column(String(48))
    #: The additional checksum every part is recorded with (``crc32``, ``sha256``, ...: CreateMultipartUpload's
    #: ``x-amz-checksum-algorithm``), and the object with (COMPOSITE); None: none.
    checksum_algorithm: Mapped[str | None] = mapped_column(String(16))

    __table_args__ = (Index("ix_multipart_uploads_tenant_id_bucket_key_id", "tenant_id", "bucket", "key", "id"),)


class MultipartPart(Base):
    """A staged part of a multipart upload. It holds a reference on its blob: the blob's ``refcount`` counts
    part rows as it counts refs, and the part's size is charged to the tenant's ``used_bytes`` while staged."""

    __tablename__ = "multipart_parts"
    upload_id: Mapped[str] = mapped_column(ForeignKey("multipart_uploads.id"), primary_key=True)
    part_number: Mapped[int] = mapped_column(Integer, primary_key=True)
    blob_id: Mapped[int] = mapped_column(ForeignKey("blobs.id"), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    md5: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: The part's checksum of its upload's ``checksum_algorithm`` (base64), if the upload has one.
    checksum: Mapped[str | None] = mapped_column(String(44))


class Checksum(Base):
    """An S3 additional checksum (``x-amz-checksum-<algorithm>``, its base64 value) a tenant's upload carried and
    the server verified, by BLAKE3 digest: returned to S3 clients that ask (``x-amz-checksum-mode``). Per tenant,
    as ETags are."""

    __tablename__ = "checksums"
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    algorithm: Mapped[str] = mapped_column(String(16), primary_key=True)
    #: The base64 checksum; a multipart object's COMPOSITE one ends ``-N`` (its parts).
    value: Mapped[str] = mapped_column(String(64))


tables = Base.metadata.tables
