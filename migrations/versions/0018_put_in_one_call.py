"""PostgreSQL: ``blobstore_put_one``, a single unconditional put's first transaction as one call.

A put of bytes the store holds (a dedup hit) binds its key, counts the reference, charges the tenant and records
an S3 PutObject's MD5 and checksums (blobstore.db.s3_facts) in this one function call in autocommit; a put of
new bytes records its upload (leased, under the caller's fresh object key) in the same call. Anything else (a
quota the put would exceed, a live blob that vanished under the lock) comes back ``undecided`` with nothing
written, for the general binding (blobstore.db.binding) to decide and explain. It locks as every writer does:
the tenant's row, then blobs in id order. Nothing to do on SQLite, whose hot path already runs a whole
transaction in one hand-off to its thread.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 12:10:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

FUNCTION = """
CREATE FUNCTION blobstore_put_one(
    p_tenant varchar, p_scope varchar, p_key varchar, p_digest varchar, p_size bigint, p_content_type varchar,
    p_metadata json, p_headers json, p_now timestamp, p_object_key varchar, p_lease_until timestamp,
    p_md5 varchar, p_algorithms varchar[], p_checksums varchar[], p_expires_at timestamp
) RETURNS TABLE (outcome text, blob_id bigint, deduplicated boolean, replaced boolean)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    t tenants%ROWTYPE;
    old refs%ROWTYPE;
    live bigint;
    add_bytes bigint;
    add_objects bigint;
    held boolean;
BEGIN
    SELECT * INTO t FROM tenants WHERE name = p_tenant FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO tenants (name, created_at) VALUES (p_tenant, p_now) ON CONFLICT DO NOTHING RETURNING * INTO t;
        IF NOT FOUND THEN  -- another transaction created it first and has committed
            SELECT * INTO t FROM tenants WHERE name = p_tenant FOR UPDATE;
        END IF;
    END IF;
    -- The tenant's lock holds its references still; blobs are locked by id, in id order, then read again.
    SELECT * INTO old FROM refs r WHERE r.tenant_id = t.id AND r.key = p_key;
    SELECT b.id INTO live FROM blobs b WHERE b.scope = p_scope AND b.state = 'live' AND b.digest = p_digest;
    PERFORM 1 FROM blobs b WHERE b.id IN (live, old.blob_id) ORDER BY b.id FOR UPDATE;
    IF live IS NOT NULL THEN
        PERFORM 1 FROM blobs b WHERE b.id = live AND b.state = 'live';
        IF NOT FOUND THEN
            RETURN QUERY SELECT 'undecided', NULL::bigint, false, false;
            RETURN;
        END IF;
    END IF;
    add_bytes := p_size - COALESCE(old.size, 0);
    add_objects := CASE WHEN old.key IS NULL THEN 1 ELSE 0 END;
    IF (t.max_bytes IS NOT NULL AND add_bytes > 0 AND t.used_bytes + add_bytes > t.max_bytes)
       OR (t.max_objects IS NOT NULL AND add_objects > 0 AND t.used_objects + add_objects > t.max_objects) THEN
        RETURN QUERY SELECT 'undecided', NULL::bigint, false, false;
        RETURN;
    END IF;
    IF live IS NULL THEN
        INSERT INTO blobs (scope, digest, size, object_key, state, refcount, created_at, lease_expires_at)
        VALUES (p_scope, p_digest, p_size, p_object_key, 'uploading', 0, p_now, p_lease_until)
        RETURNING id INTO live;
        RETURN QUERY SELECT 'recorded', live, false, false;
        RETURN;
    END IF;
    held := EXISTS (SELECT 1 FROM refs h WHERE h.tenant_id = t.id AND h.blob_id = live);
    INSERT INTO refs (tenant_id, key, blob_id, size, content_type, metadata, headers, created_at, expires_at)
    VALUES (t.id, p_key, live, p_size, p_content_type, p_metadata, p_headers, p_now, p_expires_at)
    ON CONFLICT (tenant_id, key) DO UPDATE SET blob_id = excluded.blob_id, size = excluded.size,
        content_type = excluded.content_type, metadata = excluded.metadata, headers = excluded.headers,
        created_at = excluded.created_at, expires_at = excluded.expires_at;
    IF old.blob_id IS DISTINCT FROM live THEN
        UPDATE blobs SET refcount = blobs.refcount + d.delta,
            unreferenced_since = CASE WHEN blobs.refcount + d.delta = 0 THEN p_now ELSE NULL END,
            lease_expires_at = NULL
        FROM (VALUES (live, 1), (old.blob_id, -1)) AS d (id, delta) WHERE blobs.id = d.id;
    END IF;
    IF add_bytes <> 0 OR add_objects <> 0 THEN
        UPDATE tenants SET used_bytes = used_bytes + add_bytes, used_objects = used_objects + add_objects
        WHERE id = t.id;
    END IF;
    IF p_md5 IS NOT NULL THEN
        INSERT INTO etags (tenant_id, digest, md5) VALUES (t.id, p_digest, p_md5) ON CONFLICT DO NOTHING;
    END IF;
    INSERT INTO checksums (tenant_id, digest, algorithm, value)
    SELECT t.id, p_digest, c.algorithm, c.value FROM unnest(p_algorithms, p_checksums) AS c (algorithm, value)
    ON CONFLICT DO NOTHING;
    RETURN QUERY SELECT 'bound', live, held OR old.blob_id IS NOT DISTINCT FROM live, old.key IS NOT NULL;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "DROP FUNCTION blobstore_put_one(varchar, varchar, varchar, varchar, bigint, varchar, json, json, "
            "timestamp, varchar, timestamp, varchar, varchar[], varchar[], timestamp)"
        )
