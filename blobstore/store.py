"""BlobStore and Tenant: the one place that orchestrates the database and object storage.

Tenant validates and hashes a put, then hands it to blobstore.protocol.uploads, the write half of
docs/gc-protocol.md (intent, lease, write, promote, discard; blobstore.protocol.gc is the reclaim half). Copy, put
by digest and delete bind or unbind references to live blobs in one transaction each (blobstore.db.binding).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, Self

from sqlalchemy.ext.asyncio import AsyncConnection

from blobstore.accounting import quotas
from blobstore.accounting.pricing import PriceList
from blobstore.core.config import Settings
from blobstore.core.context import Clock, Core, open_core, utc_now
from blobstore.core.egress import EgressMeter
from blobstore.core.ingest import Ingested, PutData, ingest
from blobstore.core.instrument import Observer
from blobstore.core.reading import verified_chunks
from blobstore.db import batches, binding, catalog, hot_path
from blobstore.db import spool as spool_db
from blobstore.db.engine import Database
from blobstore.db.spool import NodeSpool
from blobstore.errors import (
    BlobStoreError,
    IntegrityError,
    InvalidInput,
    NotFound,
    StorageUnavailable,
)
from blobstore.model.durations import validate_expires_in
from blobstore.model.keys import (
    validate_byte_range,
    validate_content_type,
    validate_digest,
    validate_key,
    validate_metadata,
    validate_prefix,
    validate_stored_headers,
    validate_tenant,
)
from blobstore.model.preconditions import Precondition, expect
from blobstore.model.progress import Progress, no_progress
from blobstore.model.results import BlobInfo, Page
from blobstore.model.s3_facts import S3Facts
from blobstore.protocol.uploads import PutOutcome as PutOutcome  # one item's outcome, named here for callers
from blobstore.protocol.uploads import Uploader
from blobstore.storage import ObjectStorage

if TYPE_CHECKING:  # the maintenance modules load when first used, out of every command's start-up
    from blobstore.accounting.holdings import Usage
    from blobstore.accounting.report import CostReport
    from blobstore.auth.signing import SignedUrl
    from blobstore.maintenance.fsck import FsckReport
    from blobstore.maintenance.lifecycle import ExpiryStats
    from blobstore.maintenance.transitions import TransitionStats
    from blobstore.model.lifecycle import Rule
    from blobstore.protocol.compact import CompactStats
    from blobstore.protocol.drain import DrainStats
    from blobstore.protocol.gc import GcStats, OnPlanned

#: The most keys one page of a listing holds (S3's cap too): a page is built in memory, so this bounds it.
MAX_LIST_LIMIT = 1000


class BlobStore:
    """A deduplicating blob store over one metadata database and one object storage: the facade over its core."""

    def __init__(self, core: Core) -> None:
        self.core = core

    @classmethod
    async def open(
        cls,
        settings: Settings | None = None,
        *,
        database_url: str | None = None,
        storage_url: str | None = None,
        storage: ObjectStorage | None = None,
        clock: Clock = utc_now,
        migrate_schema: bool | None = None,
        observer: Observer | None = None,
    ) -> BlobStore:
        """Open the store named by ``settings`` (default: the environment, see docs/configuration.md).

        The embedded SQLite database migrates itself; other databases must be at the
        newest schema (``blobstore db upgrade``) unless ``migrate_schema``. Any
        misconfiguration raises ConfigurationError naming the variable. With
        ``observer``, the store's storage operations and database statements are timed
        for it for the store's whole life (blobstore.core.instrument); without, they never are.
        """
        settings = settings or Settings.from_env(database_url=database_url, storage_url=storage_url)
        core = await open_core(settings, storage=storage, clock=clock, migrate_schema=migrate_schema, observer=observer)
        return cls(core)

    @property
    def settings(self) -> Settings:
        return self.core.settings

    @property
    def database(self) -> Database:
        return self.core.database

    @property
    def storage(self) -> ObjectStorage:
        return self.core.storage

    @property
    def clock(self) -> Clock:
        return self.core.clock

    async def gc(
        self, *, dry_run: bool = False, progress: Progress = no_progress, on_planned: OnPlanned | None = None
    ) -> GcStats:
        """Reclaim objects unreferenced for longer than the grace period, orphans and dead uploads
        (see blobstore.protocol.gc); ``on_planned`` hears of each deletion (and each foreign key) as it is found."""
        from blobstore.protocol.gc import gc as run_gc

        return await run_gc(self.core, dry_run=dry_run, progress=progress, on_planned=on_planned)

    async def compact(
        self, *, tenant: str | None = None, dry_run: bool = False, progress: Progress = no_progress
    ) -> CompactStats:
        """Rewrite blobs stored before frames as frames (see blobstore.protocol.compact), with ``tenant`` only
        those it references; ``dry_run`` estimates by compressing and changes nothing."""
        from blobstore.protocol.compact import compact as run_compact

        return await run_compact(self.core, tenant=tenant, dry_run=dry_run, progress=progress)

    async def fsck(
        self, *, read_data: bool = False, repair: bool = False, progress: Progress = no_progress
    ) -> FsckReport:
        """Check database and storage agree (see blobstore.maintenance.fsck); ``read_data`` re-hashes every object."""
        from blobstore.maintenance.fsck import fsck as run_fsck

        return await run_fsck(self.core, read_data=read_data, repair=repair, progress=progress)

    async def set_lifecycle_rule(
        self,
        tenant: str,
        prefix: str,
        *,
        expire_after: int | None = None,
        transition_after: int | None = None,
        storage_class: str | None = None,
    ) -> Rule:
        """Expire ``tenant``'s keys under ``prefix`` ``expire_after`` seconds after they were last written, and/or
        move their blobs to ``storage_class`` once every reference is ``transition_after`` seconds cold (in the
        rule of that prefix, keeping what is not given; see blobstore.maintenance.lifecycle, docs/lifecycle.md)."""
        from blobstore.maintenance import lifecycle

        if (transition_after is None) != (storage_class is None):
            raise InvalidInput("transition_after and storage_class go together")
        transition = None if transition_after is None else (transition_after, str(storage_class))
        return await lifecycle.set_rule(self.core, tenant, prefix, expire_after=expire_after, transition=transition)

    async def remove_lifecycle_rule(self, tenant: str, prefix: str) -> bool:
        """Remove ``tenant``'s expiry rule of exactly ``prefix``; True if there was one."""
        from blobstore.maintenance import lifecycle

        return await lifecycle.remove_rule(self.core, tenant, prefix)

    async def lifecycle_rules(self, tenant: str | None = None) -> list[Rule]:
        """Every tenant's expiry rules, or ``tenant``'s, by tenant then prefix."""
        from blobstore.maintenance import lifecycle

        return await lifecycle.rules(self.core, tenant)

    async def expire(self, *, dry_run: bool = False, batch: int | None = None) -> ExpiryStats:
        """Delete every expired key as an ordinary delete, ``batch`` keys per transaction (a dry run: count
        them; see blobstore.maintenance.lifecycle). Their bytes go once GC finds them unreferenced."""
        from blobstore.maintenance import lifecycle

        return await lifecycle.expire(
            self.core, dry_run=dry_run, batch=lifecycle.DEFAULT_BATCH if batch is None else batch
        )

    async def drain_spool(self) -> DrainStats:
        """Move the blobs spooled on this node into object storage (see blobstore.protocol.drain);
        StorageUnavailable while it still does not answer, ConfigurationError without a spool."""
        from blobstore.protocol.drain import drain

        return await drain(self.core)

    async def spool_status(self) -> list[NodeSpool]:
        """What every node's spool holds (docs/spool.md): blobs, bytes, and when the oldest was stored."""
        return await self.core.database.read(spool_db.nodes)

    async def transition(self, *, dry_run: bool = False, batch: int | None = None) -> TransitionStats:
        """Move every blob whose storage class is not the one its references' lifecycle rules and reads put it
        in: cold ones to a colder class, warm ones back to STANDARD (a dry run: count them; see
        blobstore.maintenance.transitions)."""
        from blobstore.maintenance import transitions

        return await transitions.transition(
            self.core, dry_run=dry_run, batch=transitions.DEFAULT_BATCH if batch is None else batch
        )

    async def report(
        self, *, tenant: str | None = None, pricing: str | PriceList | None = None, since: date | None = None
    ) -> CostReport:
        """A storage cost report per tenant and for the whole store (see blobstore.accounting.report)."""
        from blobstore.accounting.report import report as cost_report

        await self.core.egress.flush()
        return await cost_report(self.core, tenant=tenant, pricing=pricing, since=since)

    async def set_quota(
        self, tenant: str, *, max_bytes: quotas.Limit = quotas.KEEP, max_objects: quotas.Limit = quotas.KEEP
    ) -> quotas.Quota:
        """Limit a tenant's stored bytes and objects (None clears a limit; omitted ones stay)."""
        return await quotas.set_quota(self.core, tenant, max_bytes=max_bytes, max_objects=max_objects)

    async def quota(self, tenant: str) -> quotas.Quota:
        """A tenant's usage and limits."""
        return await quotas.quota(self.core, tenant)

    async def tenants(self) -> list[quotas.Quota]:
        """Every tenant's usage and limits, by name."""
        return await quotas.tenants(self.core)

    def tenant(self, name: str) -> Tenant:
        """A handle scoped to one tenant; raises InvalidTenant for a bad name."""
        return Tenant(self.core, validate_tenant(name))

    async def close(self) -> None:
        """Record pending egress, then release the database pool and the storage client."""
        await self.core.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


@dataclass(frozen=True)
class _PutRequest:
    key: str
    content_type: str | None
    metadata: dict[str, str]
    condition: Precondition
    headers: dict[str, str] = field(default_factory=dict)
    #: Seconds after it is bound that the key expires (None: by lifecycle rules only).
    expires_in: int | None = None

    def item(
        self, index: int, digest: str, size: int, blob_id: int | None = None, facts: S3Facts | None = None
    ) -> binding.Item:
        """This put as item ``index`` of a binding, of the bytes ``digest`` (the blob ``blob_id`` if named), with
        the S3 ``facts`` of its bytes if it has them."""
        return binding.Item(
            index,
            self.key,
            digest,
            size,
            self.content_type,
            self.metadata,
            self.condition,
            blob_id=blob_id,
            facts=facts,
            headers=self.headers,
            expires_in=None if self.expires_in is None else timedelta(seconds=self.expires_in),
        )


@dataclass(frozen=True)
class PutItem:
    """One put of :meth:`Tenant.put_many`: the arguments :meth:`Tenant.put` takes (``data`` required)."""

    key: str
    data: PutData
    digest: str | None = None
    content_type: str | None = None
    metadata: dict[str, str] | None = None
    if_absent: bool = False
    if_match: str | Collection[str] | None = None
    if_unmodified_since: datetime | None = None
    expires_in: int | None = None


#: The outcome of one item of a batch: its result, or the error the single call would have raised.
StatOutcome = BlobInfo | BlobStoreError
DeleteOutcome = bool | BlobStoreError
#: Most items one batch call takes.
MAX_BATCH = batches.MAX_BATCH


class Tenant:
    """Every read and write of one tenant. Another tenant's keys are indistinguishable from missing ones."""

    def __init__(self, core: Core, name: str) -> None:
        self.core = core
        self.name = name

    # --- writes ------------------------------------------------------------------------------------

    async def put(
        self,
        key: str,
        data: PutData | None = None,
        *,
        digest: str | None = None,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
        if_absent: bool = False,
        if_match: str | Collection[str] | None = None,
        if_unmodified_since: datetime | None = None,
        expires_in: int | None = None,
    ) -> BlobInfo:
        """Store ``data`` under ``key``, replacing what was there (``if_absent``: AlreadyExists instead).

        With ``data`` None, ``digest`` names bytes this tenant already references.
        With both, ``digest`` is an expectation: a mismatch raises IntegrityError
        and stores nothing. Nothing is written to storage when the bytes exist.

        ``if_match`` (a digest, several, or ``"*"``: the key holds one of them, or exists) and
        ``if_unmodified_since`` (an aware datetime: the key was not written after it, to the second; ignored
        with ``if_match``) make the put conditional: PreconditionFailed, and nothing stored, if the key is in
        another version when it is bound (see blobstore.model.preconditions).

        ``expires_in`` (whole seconds): the key expires that long after it is bound, whatever the lifecycle
        rules say; ``blobstore lifecycle run`` deletes it then (blobstore.maintenance.lifecycle). A later put
        of the key without it clears it.
        """
        return await self.put_with_headers(
            key,
            data,
            headers={},
            digest=digest,
            content_type=content_type,
            metadata=metadata,
            if_absent=if_absent,
            if_match=if_match,
            if_unmodified_since=if_unmodified_since,
            expires_in=expires_in,
        )

    async def put_with_headers(
        self,
        key: str,
        data: PutData | None = None,
        *,
        headers: Mapping[str, str],
        digest: str | None = None,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
        if_absent: bool = False,
        if_match: str | Collection[str] | None = None,
        if_unmodified_since: datetime | None = None,
        s3_facts: Callable[[], S3Facts] | None = None,
        expires_in: int | None = None,
    ) -> BlobInfo:
        """:meth:`put` as the S3 API writes: the key also stores the response ``headers`` (BlobInfo.headers;
        InvalidInput for a name outside blobstore.model.keys.STORED_HEADERS), and ``s3_facts`` is asked, once
        ``data`` has been read whole, what S3 knows the bytes by (their MD5 ETag, the checksums they were verified
        against), which the transaction that binds the key records, so the key is never bound without them. Not
        in the contract (TenantAPI): the HTTP API carries neither."""
        request = _PutRequest(
            validate_key(key),
            validate_content_type(content_type),
            validate_metadata(metadata),
            expect(if_match, if_unmodified_since, if_absent=if_absent),
            validate_stored_headers(dict(headers)),
            validate_expires_in(expires_in),
        )
        if digest is not None:
            validate_digest(digest)
        if data is None:
            if digest is None:
                raise InvalidInput("put needs data, or the digest of bytes this tenant already holds")
            return await self._put_known_digest(request, digest)
        uploader = self._uploader()
        max_size = self.core.settings.max_object_size
        async with uploader.ingested(data, max_size=max_size, content_type=request.content_type) as ingested:
            if digest is not None and digest != ingested.digest:
                raise IntegrityError(f"the data hash to {ingested.digest}, not the expected {digest}")
            facts = None if s3_facts is None else s3_facts()
            item = request.item(0, ingested.digest, ingested.size, facts=facts)
            if ingested.in_memory:  # concurrent puts of the tenant share a round (blobstore.core.group_commit)
                return _raised(await self.core.group_commit.put(uploader, item, ingested))
            outcomes: list[PutOutcome | None] = [None]
            await uploader.put([item], {0: ingested}, outcomes)
        return _raised(outcomes[0])

    async def copy(self, src_key: str, dst_key: str, *, if_absent: bool = False) -> BlobInfo:
        """Make ``dst_key`` a new reference to ``src_key``'s bytes; no bytes move."""
        validate_key(src_key)
        validate_key(dst_key)

        async def work(conn: AsyncConnection) -> BlobInfo:
            now = self.core.clock()
            tenant = await catalog.lock_tenant(conn, self.name, now, create=False)
            source = None if tenant is None else await catalog.find_ref(conn, tenant.id, src_key)
            if tenant is None or source is None:
                raise NotFound(f"no such key: {src_key!r}")
            condition = expect(if_absent=if_absent)
            request = _PutRequest(dst_key, source.content_type, dict(source.metadata), condition, dict(source.headers))
            item = request.item(0, source.digest, source.size, source.blob_id)
            return await self._bind_held(conn, tenant, item, now)

        self.core.storage.ensure_location()
        return await self.core.database.transaction(work)

    async def delete(
        self,
        key: str,
        *,
        if_match: str | Collection[str] | None = None,
        if_unmodified_since: datetime | None = None,
    ) -> bool:
        """Delete ``key``; True if it existed. The bytes stay while any reference remains.

        ``if_match`` and ``if_unmodified_since`` as for :meth:`put`: PreconditionFailed, and the key kept,
        unless it is in a version they accept (with ``if_match``, a missing key fails too).
        """
        validate_key(key)
        condition = expect(if_match, if_unmodified_since)
        now = self.core.clock()

        async def work(conn: AsyncConnection) -> bool:
            return bool(await binding.unbind(conn, self.name, [key], now, condition=condition))

        return await self.core.database.transaction(work)

    # --- batches -----------------------------------------------------------------------------------

    async def put_many(self, items: Iterable[PutItem]) -> list[PutOutcome]:
        """Store every item as :meth:`put` would, in one transaction for the bytes already stored and one
        for the bytes uploaded (plus a retry for uploads GC reclaimed from a stalled uploader).

        Returns one outcome per item, in order: its BlobInfo, or the BlobStoreError its single put would
        have raised (InvalidKey, PreconditionFailed, QuotaExceeded, IntegrityError, StorageUnavailable, ...),
        decided in item order as if the puts ran one after another. A key may appear once per batch (a
        repeat fails with InvalidInput). At most :data:`MAX_BATCH` items (InvalidInput otherwise); put by
        digest alone is not batched.
        """
        batch = _check_batch(items)
        outcomes: list[PutOutcome | None] = [None] * len(batch)
        ingested: dict[int, Ingested] = {}
        try:
            await self._uploader().put(await self._ingest_batch(batch, ingested, outcomes), ingested, outcomes)
        finally:
            for each in ingested.values():
                each.discard()
        return [outcome for outcome in outcomes if outcome is not None]

    async def delete_many(self, keys: Iterable[str]) -> list[DeleteOutcome]:
        """Delete every key in one transaction; per key, in order: True if it existed (a repeated key
        is False the second time), or its InvalidKey."""
        batch = _check_batch(keys)
        outcomes: list[DeleteOutcome] = [_key_error(key) or False for key in batch]
        valid = {key for key, outcome in zip(batch, outcomes, strict=True) if outcome is False}
        if valid:
            now = self.core.clock()
            existed = await self.core.database.transaction(lambda conn: binding.unbind(conn, self.name, valid, now))
            for index, key in enumerate(batch):
                if outcomes[index] is False and key in existed:
                    outcomes[index] = True
                    existed.discard(key)
        return outcomes

    async def stat_many(self, keys: Iterable[str]) -> list[StatOutcome]:
        """:meth:`stat` of every key in one transaction; per key, in order: its BlobInfo, or NotFound/InvalidKey."""
        batch = _check_batch(keys)
        outcomes = [_key_error(key) for key in batch]
        valid = {key for key, outcome in zip(batch, outcomes, strict=True) if outcome is None}

        async def work(conn: AsyncConnection) -> dict[str, catalog.RefRow]:
            tenant = await catalog.tenant_id(conn, self.name)
            return {} if tenant is None else await batches.refs_by_key(conn, tenant, valid)

        found = await self.core.database.read(work) if valid else {}
        return [
            outcome
            if outcome is not None
            else self._info(found[key])
            if key in found
            else NotFound(f"no such key: {key!r}")
            for key, outcome in zip(batch, outcomes, strict=True)
        ]

    async def _ingest_batch(
        self, batch: list[PutItem], ingested: dict[int, Ingested], outcomes: list[PutOutcome | None]
    ) -> list[binding.Item]:
        """Validate and hash every item (into ``ingested``); the items to bind, failures into ``outcomes``."""
        pending: list[binding.Item] = []
        seen: set[str] = set()
        for index, item in enumerate(batch):
            try:
                request = _PutRequest(
                    validate_key(item.key),
                    validate_content_type(item.content_type),
                    validate_metadata(item.metadata),
                    expect(item.if_match, item.if_unmodified_since, if_absent=item.if_absent),
                    expires_in=validate_expires_in(item.expires_in),
                )
                if item.digest is not None:
                    validate_digest(item.digest)
                if request.key in seen:
                    raise InvalidInput(f"key {request.key!r} appears more than once in this batch")
                seen.add(request.key)
                ingested[index] = hashed = await ingest(item.data, max_size=self.core.settings.max_object_size)
                if item.digest is not None and item.digest != hashed.digest:
                    raise IntegrityError(f"the data hash to {hashed.digest}, not the expected {item.digest}")
            except BlobStoreError as exc:
                outcomes[index] = exc
                continue
            pending.append(request.item(index, hashed.digest, hashed.size))
        return pending

    async def allowance(self, key: str, *, if_absent: bool = False, quota_set: bool = True) -> quotas.Allowance:
        """What a put of ``key`` may store now: the store's maximum object size and the tenant's quota room
        (``quota_set`` False: the caller read with its credentials that the tenant has no quota, so the size
        alone, read from nothing). A server checks a body's declared length, then its running total, against it
        before storing a byte; the put itself still decides atomically (see blobstore.accounting.quotas)."""
        return await quotas.allowance(self.core, self.name, validate_key(key), if_absent=if_absent, quota_set=quota_set)

    # --- tenant-wide (blobstore.contract.TenantAPI; blobstore.accounting.holdings, blobstore.auth.signing) ---

    async def missing(self, digests: Iterable[str]) -> list[str]:
        """Those of ``digests`` this tenant does not hold, in order, without repeats (blobstore.accounting.holdings)."""
        from blobstore.accounting import holdings

        return await holdings.missing(self.core, self.name, digests)

    async def usage(self) -> Usage:
        """This tenant's own usage and limits (see blobstore.accounting.holdings)."""
        from blobstore.accounting import holdings

        return await holdings.usage(self.core, self.name)

    async def sign_url(
        self,
        key: str,
        method: str = "GET",
        *,
        expires_in: int = 900,
        content_length: int | None = None,
        content_type: str | None = None,
        digest: str | None = None,
        base_url: str | None = None,
    ) -> SignedUrl:
        """A URL for ``method`` on ``key`` under ``base_url`` (None: the path alone), signed with no token: it
        dies with its signing key (see blobstore.auth.signing and blobstore.contract.TenantAPI.sign_url)."""
        from blobstore.auth import signing

        return await signing.sign(
            self.core,
            base_url or "",
            self.name,
            method,
            key,
            expires_in=expires_in,
            content_length=content_length,
            content_type=content_type,
            digest=digest,
        )

    # --- reads -------------------------------------------------------------------------------------

    async def stat(self, key: str) -> BlobInfo:
        """The key's digest, size, content type, metadata and creation time; NotFound if absent."""
        return self._info(await self._ref(key))

    async def exists(self, key: str) -> bool:
        """True if the key exists for this tenant."""
        try:
            await self._ref(key)
        except NotFound:
            return False
        return True

    async def get(self, key: str) -> bytes:
        """The whole value, verified against its digest (IntegrityError otherwise)."""
        async with self.open(key) as stream:
            return b"".join([chunk async for chunk in stream])

    @contextlib.asynccontextmanager
    async def open(self, key: str, byte_range: tuple[int, int] | None = None) -> AsyncIterator[BlobStream]:
        """Stream the value, or the inclusive ``byte_range`` of it (clamped to the value's end).

        A whole read is hashed as it streams and ends in IntegrityError if the
        bytes are wrong; a ranged read fetches only the frames it touches and checks each
        against its digest before yielding its bytes (a blob stored before frames: only the
        length). The bytes streamed
        count as the tenant's egress, counted when the stream closes (written within a second, see
        blobstore.core.egress).
        """
        wanted = validate_byte_range(byte_range)
        ref = await self._ref(key)
        if wanted is not None:
            last = min(wanted[1], ref.size - 1)
            wanted = (wanted[0], last) if wanted[0] <= last else None
            if wanted is None:
                yield BlobStream(self._info(ref), _empty())
                return
        chunks = verified_chunks(
            self.core.readable,
            ref.object_key,
            key=key,
            digest=ref.digest,
            size=ref.size,
            frames=ref.frames,
            byte_range=wanted,
            missing=lambda: self._missing_object_error(key, ref.object_key),
        )
        meter = EgressMeter(chunks)
        try:
            yield BlobStream(self._info(ref), meter)
        finally:
            await chunks.aclose()
            self.core.egress.add(self.name, self.core.clock().date(), meter.bytes, ref.blob_id)

    async def list(self, prefix: str = "", *, limit: int = 1000, after: str | None = None) -> Page:
        """Keys starting with ``prefix`` (literally: no wildcards), in code-point order, after ``after``."""
        validate_prefix(prefix)
        if after is not None:
            validate_prefix(after)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST_LIMIT:
            raise InvalidInput(f"limit must be an integer from 1 to {MAX_LIST_LIMIT}, not {limit!r}")

        async def work(conn: AsyncConnection) -> list[catalog.RefRow]:
            tenant = await catalog.tenant_id(conn, self.name)
            return [] if tenant is None else await catalog.list_refs(conn, tenant, prefix, after, limit + 1)

        rows = await self.core.database.read(work)
        items = [self._info(row) for row in rows[:limit]]
        return Page(items, items[-1].key if len(rows) > limit else None)

    # --- internals ---------------------------------------------------------------------------------

    async def _ref(self, key: str) -> catalog.RefRow:
        validate_key(key)
        ref = await hot_path.find_ref_named(self.core.database, self.name, key)
        if ref is None:
            raise NotFound(f"no such key: {key!r}")
        return ref

    async def _missing_object_error(self, key: str, object_key: str) -> BlobStoreError:
        """Why ``key``'s object was gone mid-read: the key moved on (a delete or replace let GC reclaim
        the object: NotFound), or it still names that object (corruption: IntegrityError)."""
        try:
            current = await self._ref(key)
        except NotFound:
            current = None
        if current is None or current.object_key != object_key:
            return NotFound(f"key {key!r} was deleted while it was being read")
        node = await self.core.database.read(partial(spool_db.spooled_node, object_key=object_key))
        if node is not None and node != self.core.settings.node_id:
            return StorageUnavailable(
                f"the bytes of {key!r} are in the spool of node {node} until it drains them into object storage "
                "(object storage was unreachable when they were put); try again later"
            )
        return IntegrityError(f"stored object for {key!r} is missing from storage")

    def _uploader(self) -> Uploader:
        """The upload protocol over the store's parts as they are now, for this tenant."""
        return Uploader.of(self.core, self.name)

    def _info(self, ref: catalog.RefRow, *, deduplicated: bool = False) -> BlobInfo:
        return ref.info(self.name, deduplicated=deduplicated)

    async def _bind_held(
        self, conn: AsyncConnection, tenant: catalog.LockedTenant, item: binding.Item, now: datetime
    ) -> BlobInfo:
        """Bind ``item`` to the blob it names, one the locked tenant references (so it is live), or raise
        the item's error (AlreadyExists, QuotaExceeded)."""
        outcome = await binding.bind(conn, tenant, self.core.dedup_scope_of(self.name), [item], now)
        assert not outcome.unbound, "a referenced blob is always live"
        return _raised(outcome.bound.get(0) or outcome.failed[0])

    async def _put_known_digest(self, request: _PutRequest, digest: str) -> BlobInfo:
        """Bind the key to bytes this tenant already references, named by digest (NotFound otherwise)."""

        async def work(conn: AsyncConnection) -> BlobInfo:
            now = self.core.clock()
            tenant = await catalog.lock_tenant(conn, self.name, now, create=False)
            held = None if tenant is None else await catalog.tenant_blob_with_digest(conn, tenant.id, digest)
            if tenant is None or held is None:
                raise NotFound(f"this tenant holds no bytes with digest {digest}")
            blob_id, size = held
            return await self._bind_held(conn, tenant, request.item(0, digest, size, blob_id), now)

        self.core.storage.ensure_location()
        return await self.core.database.transaction(work)


def _check_batch(items: Iterable[Any]) -> list[Any]:
    """The items as a list; InvalidInput if there are more than :data:`MAX_BATCH`."""
    batch = list(items)
    if len(batch) > MAX_BATCH:
        raise InvalidInput(f"at most {MAX_BATCH} items per batch, got {len(batch)}")
    return batch


def _raised(outcome: PutOutcome | None) -> BlobInfo:
    """The result of a batch of one, or its error raised."""
    if isinstance(outcome, BlobStoreError):
        raise outcome
    assert outcome is not None, "every item gets an outcome"
    return outcome


def _key_error(key: str) -> BlobStoreError | None:
    """The error :func:`validate_key` raises for ``key``, or None if it is a valid key."""
    try:
        validate_key(key)
    except BlobStoreError as exc:
        return exc
    return None


class BlobStream:
    """An open value: ``info`` describes it; iterate for its chunks."""

    def __init__(self, info: BlobInfo, chunks: AsyncIterator[bytes]) -> None:
        self.info = info
        self._chunks = chunks

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks

    async def read(self) -> bytes:
        """The rest of the stream as one bytes object."""
        return b"".join([chunk async for chunk in self._chunks])


async def _empty() -> AsyncIterator[bytes]:
    return
    yield b""
