"""The hot path on the driver connection: a single put's two transactions and a stat, at the database's speed.

:func:`bind_one` sends what :func:`blobstore.db.binding.bind` sends for one item (lock the tenant,
creating it; look up the key and the digest's live blob, locked; write the reference, the counts and the
usage, and an S3 put's MD5 and checksums), decided by the same :func:`blobstore.db.binding.decide`; bytes
with no live blob get their upload recorded in that same transaction, as
:func:`blobstore.db.batches.insert_uploads` records it.
:func:`commit_one` binds the item to that upload once its bytes are written (or to a live blob of the
digest that appeared meanwhile), as :func:`blobstore.db.binding.bind` does with ``ours``.
:func:`find_ref_named` is :func:`blobstore.db.catalog.find_ref_named`; :func:`room` is what an HTTP put's quota
pre-check reads (blobstore.accounting.quotas.allowance). All go past SQLAlchemy's per-statement
layers through :meth:`blobstore.db.engine.Database.on_driver`, which translates driver errors and replays conflicts:

* on SQLite a whole transaction (``BEGIN IMMEDIATE`` to ``COMMIT``) runs in one hand-off to SQLite's
  thread: five statements for one wake-up of the event loop;
* on PostgreSQL an unconditional put (an S3 PutObject's MD5 and checksums included) is one call of
  ``blobstore_put_one`` (migration 0018) in autocommit, which binds a dedup hit or records the upload of new
  bytes, and leaves anything else (a quota exceeded, a blob gone under the lock) undecided to the general
  transaction; that transaction, which every other single put and every commit takes, reads with one call of
  ``blobstore_bind_lookup`` (migrations 0008, 0009) and writes with one statement of data-modifying CTEs,
  inside BEGIN and COMMIT: four round trips; a stat is one statement in autocommit. No session state, and
  statements prepared as the pool's driver connections prepare every statement (so a transaction-mode pooler
  sees what it sees from SQLAlchemy).

The SQL here names tables and columns by hand, beside the SQLAlchemy schema (blobstore.db.models);
tests/store/test_hot_path.py holds the two paths to the same results.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from blobstore.db import binding, catalog, driver_reads, sqlite_driver
from blobstore.db.batches import Found, LockedBlob, NewRef, OldRef, Written
from blobstore.db.engine import Database, Driver
from blobstore.model.preconditions import UNCONDITIONAL
from blobstore.model.s3_facts import S3Facts

#: Columns of the tenant, then of each blob found (``blobstore_bind_lookup``'s result on PostgreSQL).
_SQLITE_TENANT = "SELECT id, used_bytes, used_objects, max_bytes, max_objects FROM tenants WHERE name = :tenant"
_SQLITE_CREATE_TENANT = (
    "INSERT INTO tenants (name, used_bytes, used_objects, created_at) VALUES (:tenant, 0, 0, :now) "
    "ON CONFLICT DO NOTHING RETURNING id, used_bytes, used_objects, max_bytes, max_objects"
)
#: On SQLite the write transaction holds the whole database: one statement reads everything as of the lock.
_SQLITE_LOOKUP = """
SELECT b.id, b.scope, b.digest, b.state,
       EXISTS (SELECT 1 FROM refs h WHERE h.tenant_id = :t AND h.blob_id = b.id),
       o.key, o.size, o.created_at
FROM blobs b LEFT JOIN refs o ON o.blob_id = b.id AND o.tenant_id = :t AND o.key = :key
WHERE b.id IN (
    SELECT blob_id FROM refs WHERE tenant_id = :t AND key = :key
    UNION ALL
    SELECT id FROM blobs WHERE scope = :scope AND state = 'live' AND digest = :digest
    UNION ALL
    SELECT :ours
)
"""
#: As :func:`blobstore.db.batches.insert_uploads`: the intent to upload, leased.
_SQLITE_RECORD = """
INSERT INTO blobs (scope, digest, size, object_key, state, refcount, created_at, lease_expires_at)
VALUES (:scope, :digest, :size, :object_key, 'uploading', 0, :now, :lease_until) RETURNING id
"""
_SQLITE_WRITE_REF = """
INSERT INTO refs (tenant_id, key, blob_id, size, content_type, metadata, headers, created_at, expires_at)
VALUES (:t, :key, :blob, :size, :content_type, :metadata, :headers, :now, :expires_at)
ON CONFLICT (tenant_id, key) DO UPDATE SET blob_id = excluded.blob_id, size = excluded.size,
    content_type = excluded.content_type, metadata = excluded.metadata, headers = excluded.headers,
    created_at = excluded.created_at, expires_at = excluded.expires_at
"""
#: As :data:`blobstore.db.batches._SETTLE`: a blob left with no reference starts its unreferenced clock.
_SQLITE_COUNT = """
UPDATE blobs SET refcount = refcount + :delta,
    unreferenced_since = CASE WHEN refcount + :delta = 0 THEN :now ELSE NULL END,
    state = CASE WHEN state = 'uploading' THEN 'live' ELSE state END, lease_expires_at = NULL,
    frames = COALESCE(:frames, frames), stored_size = COALESCE(:stored_size, stored_size)
WHERE id = :blob
"""
_SQLITE_CHARGE = (
    "UPDATE tenants SET used_bytes = used_bytes + :bytes, used_objects = used_objects + :objects WHERE id = :t"
)
#: As :func:`blobstore.db.s3_facts.record`: what S3 knows the bound bytes by (what is known stays).
_SQLITE_MD5 = "INSERT INTO etags (tenant_id, digest, md5) VALUES (:t, :digest, :md5) ON CONFLICT DO NOTHING"
_SQLITE_CHECKSUM = """
INSERT INTO checksums (tenant_id, digest, algorithm, value) VALUES (:t, :digest, :algorithm, :value)
ON CONFLICT DO NOTHING
"""

_REF = """
SELECT r.key, r.blob_id, b.digest, b.object_key, r.size, r.content_type, r.metadata, r.created_at, r.headers,
    b.frames
FROM refs r JOIN blobs b ON b.id = r.blob_id JOIN tenants t ON t.id = r.tenant_id
WHERE t.name = ? AND r.key = ?
"""
#: A tenant's usage and limits, and the size of its reference under a key (NULL: none), as one row.
_ROOM = """
SELECT t.used_bytes, t.used_objects, t.max_bytes, t.max_objects,
       (SELECT r.size FROM refs r WHERE r.tenant_id = t.id AND r.key = ?)
FROM tenants t WHERE t.name = ?
"""
_PG_LOOKUP = "SELECT * FROM blobstore_bind_lookup($1, $2, $3, $4, $5, $6)"
_PG_PUT_ONE = (
    "SELECT * FROM blobstore_put_one($1, $2, $3, $4, $5, $6, $7::json, $8::json, $9, $10, $11, $12, $13, $14, $15)"
)
_PG_RECORD = """
INSERT INTO blobs (scope, digest, size, object_key, state, refcount, created_at, lease_expires_at)
VALUES ($1, $2, $3, $4, 'uploading', 0, $5, $6) RETURNING id
"""
_PG_WRITE = """
WITH ref AS (
    INSERT INTO refs (tenant_id, key, blob_id, size, content_type, metadata, headers, created_at, expires_at)
    VALUES ($1, $2, $3, $4, $5, $6::json, $12::json, $7, $15)
    ON CONFLICT (tenant_id, key) DO UPDATE SET blob_id = excluded.blob_id, size = excluded.size,
        content_type = excluded.content_type, metadata = excluded.metadata, headers = excluded.headers,
        created_at = excluded.created_at, expires_at = excluded.expires_at
), counted AS (
    UPDATE blobs SET refcount = blobs.refcount + d.delta,
        unreferenced_since = CASE WHEN blobs.refcount + d.delta = 0 THEN $7 ELSE NULL END,
        state = CASE WHEN blobs.state = 'uploading' THEN 'live' ELSE blobs.state END, lease_expires_at = NULL,
        frames = COALESCE(d.frames, blobs.frames), stored_size = COALESCE(d.stored_size, blobs.stored_size)
    FROM unnest($8::bigint[], $9::bigint[], $13::bytea[], $14::bigint[]) AS d (id, delta, frames, stored_size)
    WHERE blobs.id = d.id
)
UPDATE tenants SET used_bytes = used_bytes + $10, used_objects = used_objects + $11 WHERE id = $1
"""
_PG_FACTS = """
WITH md5 AS (
    INSERT INTO etags (tenant_id, digest, md5) SELECT $1, $2, $3::text WHERE $3::text IS NOT NULL
    ON CONFLICT DO NOTHING
)
INSERT INTO checksums (tenant_id, digest, algorithm, value)
SELECT $1::bigint, $2::text, c.algorithm, c.value FROM unnest($4::text[], $5::text[]) AS c (algorithm, value)
ON CONFLICT DO NOTHING
"""


class Upload(NamedTuple):
    """A recorded upload: its blob row's id and the fresh object key its bytes go to."""

    blob_id: int
    object_key: str


@dataclass(frozen=True)
class Reservation:
    """How :func:`bind_one` records an upload: under a fresh object key per attempt (``new_key()``; a replay
    after a lost COMMIT reply must not collide with the row that did commit), leased until ``lease_until``."""

    new_key: Callable[[], str]
    lease_until: datetime


async def bind_one(
    database: Database, tenant: str, scope: str, item: binding.Item, now: datetime, reservation: Reservation
) -> tuple[binding.Outcome, Upload | None]:
    """Bind ``item`` (its bytes named by digest, ``blob_id`` None) of ``tenant`` in one transaction, creating
    the tenant if need be, as :func:`blobstore.db.binding.bind` would; its Outcome once committed.

    If the item passed every check but its bytes have no live blob (it comes back unbound), its upload is
    recorded in the same transaction as ``reservation`` says, and returned.
    """
    assert item.blob_id is None, "only bytes named by digest are bound here"
    if not database.is_sqlite and item.condition == UNCONDITIONAL:
        decided = await database.on_driver(
            lambda driver: _postgres_put_one(driver, tenant, scope, item, now, reservation)
        )
        if decided is not None:
            return decided
    return await _bind(database, tenant, scope, item, now, reservation=reservation)


async def _postgres_put_one(
    driver: Driver, tenant: str, scope: str, item: binding.Item, now: datetime, reservation: Reservation
) -> tuple[binding.Outcome, Upload | None] | None:
    """An unconditional put bound (with its S3 facts), or its upload recorded, by one call of
    ``blobstore_put_one`` (migration 0018) in autocommit, as :func:`_bind` would; None where the function leaves
    the decision (and its explanation) to the general binding, having written nothing."""
    object_key = reservation.new_key()
    at, lease_until = (moment.astimezone(UTC).replace(tzinfo=None) for moment in (now, reservation.lease_until))
    values = (item.key, item.digest, item.size, item.content_type, json.dumps(item.metadata), json.dumps(item.headers))
    facts = item.facts or S3Facts()
    s3 = (facts.md5, list(facts.checksums), list(facts.checksums.values()))
    expires_at = item.expires_at(now)
    expiry = None if expires_at is None else expires_at.astimezone(UTC).replace(tzinfo=None)
    row = await driver.connection.fetchrow(
        _PG_PUT_ONE, tenant, scope, *values, at, object_key, lease_until, *s3, expiry
    )
    driver.sent(_PG_PUT_ONE)
    outcome, blob_id, deduplicated, replaced = row
    if outcome == "recorded":
        return binding.Outcome(unbound=[item]), Upload(blob_id, object_key)
    if outcome != "bound":
        return None
    info = item.bound(tenant, now, deduplicated=deduplicated, replaced=replaced)
    return binding.Outcome(bound={item.index: info}, acquired={blob_id}), None


async def commit_one(
    database: Database,
    tenant: str,
    scope: str,
    item: binding.Item,
    upload: int,
    now: datetime,
    written: Written | None = None,
) -> binding.Outcome:
    """Bind ``item`` in one transaction to its written ``upload`` (making it live, with ``written`` recorded),
    or to a live blob of its digest that appeared meanwhile, as :func:`blobstore.db.binding.bind` with ``ours``
    and ``written`` would; its Outcome once committed. The item comes back unbound, nothing written, if GC
    reclaimed the upload."""
    outcome, _ = await _bind(database, tenant, scope, item, now, upload=upload, written=written)
    return outcome


async def _bind(
    database: Database,
    tenant: str,
    scope: str,
    item: binding.Item,
    now: datetime,
    *,
    upload: int | None = None,
    reservation: Reservation | None = None,
    written: Written | None = None,
) -> tuple[binding.Outcome, Upload | None]:
    async def work(driver: Driver) -> tuple[binding.Outcome, Upload | None]:
        attempt = _Binding(tenant, scope, item, now, upload, _intent(reservation), written)
        if database.is_sqlite:
            outcome, blob_id, sent = await sqlite_driver.on_thread(driver.connection, _sqlite_bind, attempt)
            driver.sent(*sent)
        else:
            outcome, blob_id = await _postgres_bind(driver, attempt)
        return outcome, attempt.recorded(blob_id)

    return await database.on_driver(work)


@dataclass(frozen=True)
class _Intent:
    """The upload one attempt records if the item comes back unbound."""

    object_key: str
    lease_until: datetime


@dataclass(frozen=True)
class _Binding:
    """One attempt's transaction: the item, the caller's upload it may bind (``ours``), the intent it may record."""

    tenant: str
    scope: str
    item: binding.Item
    now: datetime
    ours: int | None
    intent: _Intent | None
    #: What the caller's upload ``ours`` turned out to be, recorded if it goes live.
    written: Written | None = None

    def decide(self, locked: catalog.LockedTenant, found: Found) -> tuple[binding.Outcome, binding.Writes]:
        ours = None if self.ours is None else {self.item.digest: self.ours}
        return binding.decide(locked, self.scope, [self.item], found, self.now, ours=ours)

    def recorded_of(self, blob_id: int) -> dict[str, Any]:
        """The frame index and stored size the count statement records on ``blob_id`` (NULLs: none)."""
        if self.written is None or blob_id != self.ours:
            return {"frames": None, "stored_size": None}
        return {"frames": self.written.frames, "stored_size": self.written.stored_size}

    def recorded(self, blob_id: int | None) -> Upload | None:
        """The upload this attempt recorded as row ``blob_id`` (None: it recorded none)."""
        return None if self.intent is None or blob_id is None else Upload(blob_id, self.intent.object_key)


def _intent(reservation: Reservation | None) -> _Intent | None:
    """A fresh intent for one attempt (its own object key)."""
    return None if reservation is None else _Intent(reservation.new_key(), reservation.lease_until)


async def find_ref_named(database: Database, tenant: str, key: str) -> catalog.RefRow | None:
    """The named tenant's reference under ``key`` with its blob, in one statement (a read, no lock)."""
    row = await driver_reads.fetch_row(database, _REF, (tenant, key))
    if row is None:
        return None
    metadata, headers = (json.loads(value) if isinstance(value, str) else value for value in (row[6], row[8]))
    created_at = driver_reads.utc(row[7])
    assert created_at is not None, "created_at is never NULL"
    frames = None if row[9] is None else bytes(row[9])
    return catalog.RefRow(row[0], row[1], row[2], row[3], row[4], row[5], metadata, created_at, headers, frames)


async def room(database: Database, tenant: str, key: str) -> tuple[catalog.Usage, int | None] | None:
    """The named tenant's usage and limits, and the size of its reference under ``key`` (None: no such key), in
    one statement (a read, no lock); None for a tenant that never stored anything."""
    row = await driver_reads.fetch_row(database, _ROOM, (key, tenant))
    return None if row is None else (catalog.Usage(row[0], row[1], row[2], row[3]), row[4])


def _sqlite_bind(db: sqlite3.Connection, b: _Binding) -> tuple[binding.Outcome, int | None, list[str]]:
    """On SQLite's thread: the whole transaction; its outcome, the upload it recorded and the statements sent."""
    at = _sqlite_time(b.now)
    sent: list[str] = []

    def run(sql: str, params: dict[str, Any]) -> list[Any]:
        sent.append(sql)
        return db.execute(sql, params).fetchall()

    db.execute("BEGIN IMMEDIATE")
    try:
        rows = run(_SQLITE_TENANT, {"tenant": b.tenant}) or run(_SQLITE_CREATE_TENANT, {"tenant": b.tenant, "now": at})
        locked = _locked(b.tenant, rows[0])
        lookup = {"t": locked.id, "key": b.item.key, "scope": b.scope, "digest": b.item.digest, "ours": b.ours}
        outcome, writes = b.decide(locked, _found(run(_SQLITE_LOOKUP, lookup), _sqlite_datetime))
        recorded = None
        if outcome.unbound and b.intent is not None:
            [[recorded]] = run(_SQLITE_RECORD, {**_sqlite_intent(b, b.intent), "now": at})
        for ref in writes.new + writes.replaced:
            run(_SQLITE_WRITE_REF, {"t": locked.id, "now": at, **_ref_params(ref)})
        if deltas := _deltas(writes):
            sent.append(_SQLITE_COUNT)
            db.executemany(
                _SQLITE_COUNT, [{"blob": blob, "delta": d, "now": at, **b.recorded_of(blob)} for blob, d in deltas]
            )
        if writes.add_bytes or writes.add_objects:
            run(_SQLITE_CHARGE, {"t": locked.id, "bytes": writes.add_bytes, "objects": writes.add_objects})
        for digest, facts in writes.facts.items():  # one item: one digest at most
            if facts.md5 is not None:
                run(_SQLITE_MD5, {"t": locked.id, "digest": digest, "md5": facts.md5})
            for algorithm, value in facts.checksums.items():
                run(_SQLITE_CHECKSUM, {"t": locked.id, "digest": digest, "algorithm": algorithm, "value": value})
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return outcome, recorded, sent


async def _postgres_bind(driver: Driver, b: _Binding) -> tuple[binding.Outcome, int | None]:
    conn = driver.connection
    at = b.now.astimezone(UTC).replace(tzinfo=None)
    transaction = conn.transaction()
    await transaction.start()
    try:
        rows = await conn.fetch(_PG_LOOKUP, b.tenant, b.scope, b.item.key, b.item.digest, at, b.ours)
        driver.sent(_PG_LOOKUP)
        locked = _locked(b.tenant, rows[0])
        outcome, writes = b.decide(locked, _found([tuple(row)[5:] for row in rows if row[5] is not None], _aware))
        recorded = None
        if outcome.unbound and b.intent is not None:
            lease_until = b.intent.lease_until.astimezone(UTC).replace(tzinfo=None)
            values = (b.scope, b.item.digest, b.item.size, b.intent.object_key, at, lease_until)
            recorded = await conn.fetchval(_PG_RECORD, *values)
            driver.sent(_PG_RECORD)
        deltas = _deltas(writes)
        for ref in writes.new + writes.replaced:  # one item: one reference at most
            blobs, changes = [blob for blob, _ in deltas], [delta for _, delta in deltas]
            recorded_of = [b.recorded_of(blob) for blob in blobs]
            frames, stored_sizes = [r["frames"] for r in recorded_of], [r["stored_size"] for r in recorded_of]
            metadata = json.dumps(ref.metadata)
            refs = (locked.id, ref.key, ref.blob_id, ref.size, ref.content_type, metadata, at)
            counts = (blobs, changes, writes.add_bytes, writes.add_objects)
            expires_at = None if ref.expires_at is None else ref.expires_at.astimezone(UTC).replace(tzinfo=None)
            await conn.execute(_PG_WRITE, *refs, *counts, json.dumps(ref.headers), frames, stored_sizes, expires_at)
            driver.sent(_PG_WRITE)
        for digest, facts in writes.facts.items():  # one item: one digest at most
            algorithms, checksums = list(facts.checksums), list(facts.checksums.values())
            await conn.execute(_PG_FACTS, locked.id, digest, facts.md5, algorithms, checksums)
            driver.sent(_PG_FACTS)
    except BaseException:
        if not conn.is_closed():
            await transaction.rollback()
        raise
    await transaction.commit()
    return outcome, recorded


def _sqlite_intent(b: _Binding, intent: _Intent) -> dict[str, Any]:
    return {
        "scope": b.scope,
        "digest": b.item.digest,
        "size": b.item.size,
        "object_key": intent.object_key,
        "lease_until": _sqlite_time(intent.lease_until),
    }


def _locked(name: str, row: Any) -> catalog.LockedTenant:
    return catalog.LockedTenant(row[0], name, catalog.Usage(row[1], row[2], row[3], row[4]))


def _found(rows: Iterable[Any], timestamp: Any) -> Found:
    """:class:`Found` from rows of (id, scope, digest, state, held, old key, old size, old created_at)."""
    found = Found()
    for blob, scope, digest, state, held, key, size, created_at in rows:
        found.blobs[blob] = LockedBlob(scope, digest, state, bool(held))
        if key is not None:
            found.olds[key] = OldRef(blob, size, timestamp(created_at))
    return found


def _deltas(writes: binding.Writes) -> list[tuple[int, int]]:
    """The reference-count changes, in id order (the order every writer locks blobs in)."""
    return sorted((blob, delta) for blob, delta in writes.refcounts.items() if delta)


def _ref_params(ref: NewRef) -> dict[str, Any]:
    return {
        "key": ref.key,
        "blob": ref.blob_id,
        "size": ref.size,
        "content_type": ref.content_type,
        "metadata": json.dumps(ref.metadata),
        "headers": json.dumps(ref.headers),
        "expires_at": None if ref.expires_at is None else _sqlite_time(ref.expires_at),
    }


def _sqlite_time(moment: datetime) -> str:
    """A UTC moment as SQLAlchemy stores a DateTime on SQLite."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _sqlite_datetime(value: str) -> datetime:
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC)
