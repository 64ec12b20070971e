"""S3 multipart uploads: an object uploaded in numbered parts, then completed into one ordinary put.

A part is written as a blob through the store's upload protocol (intent, lease, write, promote; dedup by digest
like any put, staged while it streams where the storage can stage), but what holds the blob is a *part row* of
the upload instead of a key: the blob's ``refcount`` counts part rows as it counts references, and the part's
size is charged to the tenant's ``used_bytes`` (QuotaExceeded as for a put), in the transaction that records
the part. So GC never reclaims a staged part, and reclaims it once its part row is gone.

Completing joins the listed parts into a put of the upload's key: their frames, each read and verified against
its digest to hash the whole, become the object's frames as they are stored, copied and never encoded again
(blobstore.core.joining; parts stored before frames are streamed, verified, into an ordinary put). The binding
that makes the object and the release of the upload (its part rows, their references and quota) are one
transaction. Abort and expiry (GC, after BLOBSTORE_MULTIPART_EXPIRY untouched) release an upload in
one transaction too. docs/gc-protocol.md argues why a crash anywhere loses nothing and leaks nothing.

Uploads are the tenant's own: another tenant's upload id answers NoSuchUpload, as one that does not exist.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import secrets
from collections.abc import AsyncIterable, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Protocol

from blobstore.buckets import key_of
from blobstore.core.hashing import hashed_in_threads
from blobstore.core.ingest import Ingested
from blobstore.core.joining import Joined, Piece, joined
from blobstore.core.reading import verified_chunks
from blobstore.db import batches, binding, catalog, hot_path, s3_facts
from blobstore.db import buckets as etags_db
from blobstore.db import checksums as checksums_db
from blobstore.db import multipart as db
from blobstore.errors import (
    BlobStoreError,
    EntityTooSmall,
    IntegrityError,
    InvalidInput,
    InvalidPart,
    InvalidPartOrder,
    NoSuchUpload,
)
from blobstore.model import checksums
from blobstore.model.keys import (
    validate_content_type,
    validate_key,
    validate_metadata,
    validate_stored_headers,
    validate_tenant,
)
from blobstore.model.preconditions import UNCONDITIONAL, Precondition, expect
from blobstore.model.results import BlobInfo
from blobstore.model.s3_facts import S3Facts
from blobstore.protocol.uploads import PutOutcome, Uploader

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from blobstore.core.context import Core

#: Part numbers run from 1 to this.
MAX_PART_NUMBER = 10_000
#: Every part but the last of a completed upload is at least this long.
MIN_PART_SIZE = 5 * 2**20
#: The longest part (S3's bound on one PUT).
MAX_PART_SIZE = 5 * 2**30


#: A multipart upload in progress: its id, the bucket, key, type and metadata of the object it will become, and
#: when it was begun (``created_at``).
Upload = db.UploadRow


class SelfHashing(Protocol):
    """A part's bytes that hash themselves as they stream (blobstore.s3.payload.CheckedBody), so
    :func:`upload_part` does not hash them again."""

    @property
    def checksum_algorithm(self) -> str | None:
        """The algorithm of the checksum the bytes are verified against, known before the first of them."""
        ...

    def facts(self) -> S3Facts:
        """Once the bytes have ended: their MD5 (hex) and the checksum they were verified against."""
        ...


@dataclass(frozen=True)
class Part:
    """A staged part: its number, ETag (quoted MD5), size, when it was uploaded, and its (algorithm, base64
    checksum) of the upload's algorithm, if the upload has one."""

    number: int
    etag: str
    size: int
    last_modified: datetime
    checksum: tuple[str, str] | None = None


@dataclass(frozen=True)
class Completed:
    """A completed upload: the object stored, its ETag (quoted ``<MD5 of the parts' MD5s>-<parts>``), and its
    (algorithm, COMPOSITE checksum) if the upload has an algorithm."""

    info: BlobInfo
    etag: str
    checksum: tuple[str, str] | None = None


async def create(
    core: Core,
    tenant: str,
    bucket: str,
    key: str,
    *,
    content_type: str | None,
    metadata: Mapping[str, str],
    headers: dict[str, str] | None = None,
    checksum_algorithm: str | None = None,
) -> Upload:
    """Begin an upload of ``key`` in the tenant's ``bucket`` (the caller checked it exists), whose object will
    have ``content_type``, ``metadata`` and the stored response ``headers`` (BlobInfo.headers). With a
    ``checksum_algorithm`` (one of blobstore.model.checksums.ALGORITHMS, else InvalidInput) every part's checksum
    is computed and recorded, and the object's COMPOSITE one."""
    validate_tenant(tenant)
    validate_key(key_of(bucket, key))
    if checksum_algorithm is not None and checksum_algorithm not in checksums.ALGORITHMS:
        raise InvalidInput(f"unknown checksum algorithm {checksum_algorithm!r}")
    now = core.clock()
    row = db.UploadRow(
        secrets.token_urlsafe(32),
        bucket,
        key,
        validate_content_type(content_type),
        validate_metadata(dict(metadata)),
        now,
        validate_stored_headers(headers),
        checksum_algorithm,
    )

    async def work(conn: AsyncConnection) -> None:
        locked = await catalog.lock_tenant(conn, tenant, now, create=True)
        assert locked is not None, "lock_tenant creates the tenant"
        await db.insert_upload(conn, locked.id, row)

    await core.database.transaction(work)
    return row


async def upload_part(
    core: Core,
    tenant: str,
    bucket: str,
    key: str,
    upload_id: str,
    number: int,
    data: AsyncIterable[bytes],
    *,
    hashed: SelfHashing | None = None,
) -> Part:
    """Stage ``data`` as part ``number`` of the upload, replacing a part of that number; the part.

    NoSuchUpload (before a byte is read) if the tenant has no such upload of ``key``, or (nothing staged) if it
    was completed or aborted meanwhile; InvalidInput for a part number out of range; QuotaExceeded if the part
    does not fit the tenant's quota (a replaced part's bytes are freed as it is replaced). The part's MD5 and
    its checksum of the upload's algorithm are computed as it streams, unless ``hashed`` (``data`` itself, when
    it hashes its bytes as they stream) computes them already: then they are taken from it.
    """
    if not 1 <= number <= MAX_PART_NUMBER:
        raise InvalidInput(f"part numbers run from 1 to {MAX_PART_NUMBER}, not {number}")
    upload = await _existing(core, tenant, bucket, key, upload_id)
    algorithm = upload.checksum_algorithm
    md5 = hashlib.md5(usedforsecurity=False)
    hashers: list[checksums.Hasher] = [] if hashed is not None else [md5]
    computed = None  # the checksum of the upload's algorithm, unless ``hashed`` verifies that one
    if algorithm is not None and (hashed is None or hashed.checksum_algorithm != algorithm):
        computed = checksums.hasher(algorithm)
        hashers.append(computed)
    uploader = Uploader.of(core, tenant)
    outcomes: list[PutOutcome | None] = [None]
    source = hashed_in_threads(data, hashers) if hashers else data  # ``hashed`` may compute everything itself
    async with uploader.ingested(
        source, max_size=min(core.settings.max_object_size, MAX_PART_SIZE), content_type=None
    ) as ingested:
        facts = S3Facts(md5.hexdigest()) if hashed is None else hashed.facts()
        part_md5 = str(facts.md5)
        checksum = facts.checksums.get(algorithm) if algorithm is not None else None
        if computed is not None:
            checksum = checksums.encoded(computed)
        item = binding.Item(0, f"{upload.id}/{number}", ingested.digest, ingested.size, None, {}, UNCONDITIONAL)
        binder = partial(_bind_part, upload=upload, number=number, md5=part_md5, checksum=checksum)
        await replace(uploader, binder=binder).put([item], {0: ingested}, outcomes)
    info = _raised(outcomes[0])
    return Part(number, f'"{part_md5}"', info.size, info.created_at, _paired(upload, checksum))


async def complete(
    core: Core,
    tenant: str,
    bucket: str,
    key: str,
    upload_id: str,
    listed: Sequence[tuple[int, str]],
    *,
    if_absent: bool = False,
    if_match: str | None = None,
    listed_checksums: Mapping[int, tuple[str, str]] | None = None,
    expected_checksum: tuple[str, str] | None = None,
) -> Completed:
    """Store the ``listed`` parts (part number, ETag), in order, as the upload's object, and end the upload.

    The list must be in ascending order of part number (InvalidPartOrder) and name uploaded parts by their
    ETags (InvalidPart), and by the (algorithm, checksum) ``listed_checksums`` gives a part number, if any
    (InvalidPart unless it is the part's, of the upload's algorithm); every part but the last is at least
    :data:`MIN_PART_SIZE` (EntityTooSmall). Parts not listed are discarded. An upload with a checksum algorithm
    records the object's COMPOSITE checksum with its ETag; an ``expected_checksum`` (algorithm, value) must be that
    one (IntegrityError otherwise, nothing completed). ``if_absent`` / ``if_match`` (a digest) make the put
    conditional as :meth:`blobstore.store.Tenant.put`'s do. The object is bound and the upload released in one
    transaction: on any error the upload is left as it was; after a crash, a retry completes it. A retry of a
    completion that succeeded (or one racing it) answers it again, as :func:`completed`, its conditions not
    judged again.
    """
    _check_order(listed)
    condition = expect(if_match, if_absent=if_absent)
    try:
        return await _complete(
            core, tenant, bucket, key, upload_id, listed, condition, listed_checksums or {}, expected_checksum
        )
    except NoSuchUpload:
        if (again := await completed(core, tenant, bucket, key, upload_id, listed)) is not None:
            return again
        raise


async def completed(
    core: Core, tenant: str, bucket: str, key: str, upload_id: str, listed: Sequence[tuple[int, str]]
) -> Completed | None:
    """The completion of the tenant's upload if it completed with the ``listed`` parts (the same ETag) and its key
    still holds the object it made (not deleted or written since): a client's retry after a lost answer. None
    otherwise, or once GC has forgotten the upload (BLOBSTORE_MULTIPART_EXPIRY after its completion)."""
    validate_tenant(tenant)
    found = await core.database.read(
        partial(db.find_completed, tenant=tenant, upload_id=upload_id, bucket=bucket, key=key)
    )
    try:
        etag = _multipart_etag([md5.strip().strip('"') for _, md5 in listed])
    except ValueError:  # an ETag that is no MD5 names no part this upload had
        return None
    if found is None or found.etag != etag:
        return None
    ref = await hot_path.find_ref_named(core.database, tenant, key_of(bucket, key))
    if ref is None or (ref.digest, ref.created_at) != (found.digest, found.completed_at):
        return None
    checksum = None
    if found.checksum_algorithm is not None:
        recorded = await s3_facts.lookup(core.database, tenant, ref.digest)
        value = recorded.checksums.get(found.checksum_algorithm)
        checksum = None if value is None else (found.checksum_algorithm, value)
    return Completed(ref.info(tenant), f'"{etag}"', checksum)


async def _complete(
    core: Core,
    tenant: str,
    bucket: str,
    key: str,
    upload_id: str,
    listed: Sequence[tuple[int, str]],
    condition: Precondition,
    listed_checksums: Mapping[int, tuple[str, str]],
    expected_checksum: tuple[str, str] | None,
) -> Completed:
    upload = await _existing(core, tenant, bucket, key, upload_id)
    staged = {part.number: part for part in await core.database.read(partial(db.list_parts, upload_id=upload.id))}
    chosen = [_chosen(staged, number, etag) for number, etag in listed]
    for part in chosen:
        _check_listed_checksum(upload, part, listed_checksums.get(part.number))
    for part in chosen[:-1]:
        if part.size < MIN_PART_SIZE:
            raise EntityTooSmall(f"part {part.number} is {part.size} bytes; all but the last are at least 5 MiB")
    etag = _multipart_etag([part.md5 for part in chosen])
    checksum = _composite(upload, chosen)
    if expected_checksum is not None and expected_checksum != checksum:
        algorithm, value = expected_checksum
        raise IntegrityError(f"the object's {algorithm.upper()} checksum would not be {value}")
    uploader = Uploader.of(core, tenant)
    outcomes: list[PutOutcome | None] = [None]
    async with _whole(core, uploader, upload, chosen) as ingested:
        item = binding.Item(
            0,
            key_of(bucket, key),
            ingested.digest,
            ingested.size,
            upload.content_type,
            upload.metadata,
            condition,
            headers=upload.headers,
        )
        binder = partial(_bind_completion, upload=upload, chosen=chosen, md5=etag, checksum=checksum)
        await replace(uploader, binder=binder).put([item], {0: ingested}, outcomes)
    return Completed(_raised(outcomes[0]), f'"{etag}"', checksum)


def _paired(upload: Upload, checksum: str | None) -> tuple[str, str] | None:
    """(the upload's algorithm, ``checksum``), if the upload has one."""
    algorithm = upload.checksum_algorithm
    return None if algorithm is None or checksum is None else (algorithm, checksum)


def _check_listed_checksum(upload: Upload, part: db.PartRow, listed: tuple[str, str] | None) -> None:
    """InvalidPart unless the (algorithm, checksum) a completion ``listed`` for ``part``, if any, is the part's."""
    if listed is None:
        return
    algorithm, value = listed
    if algorithm != upload.checksum_algorithm or value.strip() != part.checksum:
        raise InvalidPart(f"part {part.number} was not uploaded with the {algorithm.upper()} checksum {value}")


def _composite(upload: Upload, parts: Sequence[db.PartRow]) -> tuple[str, str] | None:
    """(algorithm, COMPOSITE checksum) of the object made of ``parts``, if the upload has an algorithm."""
    algorithm = upload.checksum_algorithm
    values = [part.checksum for part in parts if part.checksum is not None]
    if algorithm is None or len(values) != len(parts):  # every part of an upload with an algorithm has one
        return None
    return algorithm, checksums.composite(algorithm, values)


async def abort(core: Core, tenant: str, bucket: str, key: str, upload_id: str) -> None:
    """End the upload without an object: its parts' references and quota are released in one transaction (GC
    reclaims their blobs past grace). NoSuchUpload if the tenant has no such upload of ``key``."""
    validate_tenant(tenant)
    now = core.clock()

    async def work(conn: AsyncConnection) -> None:
        locked = await catalog.lock_tenant(conn, tenant, now, create=False)
        if locked is None or await db.find_upload(conn, locked.id, upload_id, bucket, key) is None:
            raise NoSuchUpload(f"no upload {upload_id!r} of {key!r} is in progress")
        await db.release(conn, locked.id, upload_id, now)

    await core.database.transaction(work)


async def list_parts(
    core: Core, tenant: str, bucket: str, key: str, upload_id: str, *, after: int = 0, limit: int = 1000
) -> tuple[Upload, list[Part], bool]:
    """The upload, up to ``limit`` of its parts numbered above ``after``, and whether more follow."""
    upload = await _existing(core, tenant, bucket, key, upload_id)
    rows = await core.database.read(partial(db.list_parts, upload_id=upload_id, after=after, limit=limit + 1))
    parts = [
        Part(row.number, f'"{row.md5}"', row.size, row.created_at, _paired(upload, row.checksum))
        for row in rows[:limit]
    ]
    return upload, parts, len(rows) > limit


async def list_uploads(
    core: Core,
    tenant: str,
    bucket: str,
    *,
    prefix: str = "",
    after: tuple[str, str | None] | None = None,
    limit: int = 1000,
) -> tuple[list[Upload], bool]:
    """Up to ``limit`` of the tenant's uploads in ``bucket`` with keys starting ``prefix``, by key then upload id,
    after ``(key, upload id)`` (upload id None: after every upload of that key); and whether more follow."""
    validate_tenant(tenant)
    rows = await core.database.read(
        partial(db.list_uploads, tenant=tenant, bucket=bucket, prefix=prefix, after=after, limit=limit + 1)
    )
    return rows[:limit], len(rows) > limit


async def _existing(core: Core, tenant: str, bucket: str, key: str, upload_id: str) -> Upload:
    """The tenant's upload, read without a lock (the transaction that uses it checks again); else NoSuchUpload."""
    validate_tenant(tenant)
    row = await core.database.read(
        partial(db.find_upload_named, tenant=tenant, upload_id=upload_id, bucket=bucket, key=key)
    )
    if row is None:
        raise NoSuchUpload(f"no upload {upload_id!r} of {key!r} is in progress")
    return row


def _multipart_etag(md5s: Sequence[str]) -> str:
    """S3's ETag of an object completed from parts of these hex MD5s: the MD5 of their binary MD5s, ``-N``
    (unquoted); ValueError if one is not hex."""
    combined = hashlib.md5(b"".join(bytes.fromhex(md5) for md5 in md5s), usedforsecurity=False)
    return f"{combined.hexdigest()}-{len(md5s)}"


def _check_order(listed: Sequence[tuple[int, str]]) -> None:
    if not listed:
        raise InvalidInput("a completion names at least one part")
    numbers = [number for number, _ in listed]
    if any(later <= earlier for earlier, later in itertools.pairwise(numbers)):
        raise InvalidPartOrder("the parts must be listed in ascending order of part number")


def _chosen(staged: Mapping[int, db.PartRow], number: int, etag: str) -> db.PartRow:
    part = staged.get(number)
    if part is None or part.md5 != etag.strip().strip('"'):
        raise InvalidPart(f"part {number} was not uploaded with ETag {etag}")
    return part


@contextlib.asynccontextmanager
async def _whole(
    core: Core, uploader: Uploader, upload: Upload, parts: Sequence[db.PartRow]
) -> AsyncIterator[Ingested | Joined]:
    """The object the ``parts`` make, hashed and ready for the uploader's put. Framed parts are joined as they
    are stored (blobstore.core.joining: their frames checked and hashed, then their stored bytes copied);
    parts stored before frames are streamed, verified, into an ordinary put as any stream is."""
    max_size = core.settings.max_object_size
    if all(part.frames is not None for part in parts):
        pieces = [
            Piece(part.object_key, f"part {part.number}", part.digest, part.size, part.frames)
            for part in parts
            if part.frames is not None
        ]
        yield await joined(core.storage, pieces, max_size=max_size, missing=_gone)
        return
    async with uploader.ingested(
        _concatenated(core, parts), max_size=max_size, content_type=upload.content_type
    ) as ingested:
        yield ingested


async def _gone() -> BlobStoreError:
    return NoSuchUpload("the upload was ended while it was being completed")


async def _concatenated(core: Core, parts: Sequence[db.PartRow]) -> AsyncIterator[bytes]:
    """The bytes of ``parts`` one after another, each part verified against its digest as it streams."""
    for part in parts:
        async for chunk in verified_chunks(
            core.readable,
            part.object_key,
            key=f"part {part.number}",
            digest=part.digest,
            size=part.size,
            frames=part.frames,
            byte_range=None,
            missing=_gone,
        ):
            yield chunk


def _raised(outcome: PutOutcome | None) -> BlobInfo:
    assert outcome is not None, "every item gets an outcome"
    if isinstance(outcome, BlobStoreError):
        raise outcome
    return outcome


def _room(tenant: catalog.LockedTenant, freed: int, *, count_objects: bool) -> catalog.LockedTenant:
    """The locked tenant as a quota check should see it once ``freed`` bytes are released (and, unless
    ``count_objects``, without an object limit: a part is no object)."""
    usage = tenant.usage
    max_objects = usage.max_objects if count_objects else None
    room = catalog.Usage(usage.used_bytes - freed, usage.used_objects, usage.max_bytes, max_objects)
    return catalog.LockedTenant(tenant.id, tenant.name, room)


async def _still_open(conn: AsyncConnection, tenant: catalog.LockedTenant, upload: Upload) -> None:
    """NoSuchUpload unless the upload is still in progress (the caller holds the tenant's lock)."""
    if await db.find_upload(conn, tenant.id, upload.id, upload.bucket, upload.key) is None:
        raise NoSuchUpload(f"upload {upload.id!r} was completed or aborted meanwhile")


async def _bind_part(
    conn: AsyncConnection,
    tenant: catalog.LockedTenant,
    scope: str,
    items: Sequence[binding.Item],
    now: datetime,
    *,
    ours: Mapping[str, int] | None = None,
    written: Mapping[int, batches.Written] | None = None,
    upload: Upload,
    number: int,
    md5: str,
    checksum: str | None,
) -> binding.Outcome:
    """The binder of a part (blobstore.protocol.uploads.Binder): under the tenant's lock, if the upload is still
    in progress, record the part on its blob (replacing the part of that number): the blob's refcount and the
    tenant's bytes go up by the part, the replaced part's down. Touches the upload."""
    await _still_open(conn, tenant, upload)
    ours = ours or {}
    old = await db.find_part(conn, upload.id, number)
    replaced = set() if old is None else {old.blob_id}
    found = await batches.lookup(
        conn, tenant.id, scope, keys=[], digests={item.digest for item in items}, ids={*ours.values(), *replaced}
    )
    freed = 0 if old is None else old.size
    outcome, writes = binding.decide(_room(tenant, freed, count_objects=False), scope, items, found, now, ours=ours)
    for ref in writes.new:  # the one item, if it was bound
        await db.put_part(conn, upload.id, number, ref.blob_id, ref.size, md5, checksum, now)
        await db.touch(conn, upload.id, now)
        if old is not None:
            writes.refcounts[old.blob_id] -= 1
        part_writes = binding.Writes(refcounts=writes.refcounts, add_bytes=ref.size - freed)
        await binding.write(conn, tenant.id, part_writes, now, written=written)
    return outcome


async def _bind_completion(
    conn: AsyncConnection,
    tenant: catalog.LockedTenant,
    scope: str,
    items: Sequence[binding.Item],
    now: datetime,
    *,
    ours: Mapping[str, int] | None = None,
    written: Mapping[int, batches.Written] | None = None,
    upload: Upload,
    chosen: Sequence[db.PartRow],
    md5: str,
    checksum: tuple[str, str] | None,
) -> binding.Outcome:
    """The binder of a completion (blobstore.protocol.uploads.Binder): under the tenant's lock, if the upload is
    still in progress with the parts streamed, bind its key as any put binds (the quota checked as if the staged
    parts were already released) and, in the same transaction, release the upload's parts, keep it as completed
    (blobstore.db.multipart.complete) and record the object's ETag (with its part sizes) and COMPOSITE
    ``checksum``, if any. An error of the binding is raised, so nothing changes and the upload stays."""
    await _still_open(conn, tenant, upload)
    staged = await db.list_parts(conn, upload.id)
    wanted = {part.number: part.blob_id for part in chosen}
    if {part.number: part.blob_id for part in staged if part.number in wanted} != wanted:
        raise InvalidPart("a part was uploaded again while the upload was being completed")
    ours = ours or {}
    [item] = items
    found = await batches.lookup(
        conn,
        tenant.id,
        scope,
        keys=[item.key],
        digests={item.digest},
        ids={*ours.values(), *(part.blob_id for part in staged)},
    )
    freed = db.staged_bytes(staged)
    outcome, writes = binding.decide(_room(tenant, freed, count_objects=True), scope, items, found, now, ours=ours)
    if item.index in outcome.failed:
        raise outcome.failed[item.index]
    if item.index in outcome.bound:
        for blob_id, _ in await db.complete(conn, upload.id, item.digest, md5, now):
            writes.refcounts[blob_id] -= 1
        writes.add_bytes -= freed
        await binding.write(conn, tenant.id, writes, now, written=written)
        await etags_db.record_md5(conn, tenant.name, item.digest, md5, [part.size for part in chosen])
        if checksum is not None:
            await checksums_db.record(conn, tenant.name, item.digest, *checksum)
    return outcome
