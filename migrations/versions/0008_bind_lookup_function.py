"""PostgreSQL: ``blobstore_bind_lookup``, the reads of a single put's binding as one call.

It locks the tenant's row (creating the tenant if it has none), finds the blobs a put of one key to one
digest may touch (the key's current reference and the live blob of the digest in the dedup scope), locks
them in id order, and returns them with their states as of the lock: the three statements
:func:`blobstore.db.catalog.lock_tenant` and :func:`blobstore.db.batches.lookup` send, in one round trip
(blobstore.db.hot_path). Every row carries the tenant's id and usage; a row with a NULL blob id means no
blob was found. Nothing to do on SQLite, whose put runs its statements in one hand-off to SQLite's thread.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 23:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

FUNCTION = """
CREATE OR REPLACE FUNCTION blobstore_bind_lookup(
    p_tenant varchar, p_scope varchar, p_key varchar, p_digest varchar, p_now timestamp
) RETURNS TABLE (
    tenant_id bigint, used_bytes bigint, used_objects bigint, max_bytes bigint, max_objects bigint,
    blob_id bigint, scope varchar, digest varchar, state varchar, held boolean,
    old_key varchar, old_size bigint, old_created_at timestamp
) LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    t tenants%ROWTYPE;
    ids bigint[];
BEGIN
    SELECT * INTO t FROM tenants WHERE name = p_tenant FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO tenants (name, created_at) VALUES (p_tenant, p_now) ON CONFLICT DO NOTHING RETURNING * INTO t;
        IF NOT FOUND THEN  -- another transaction created it first and has committed
            SELECT * INTO t FROM tenants WHERE name = p_tenant FOR UPDATE;
        END IF;
    END IF;
    ids := ARRAY(
        SELECT r.blob_id FROM refs r WHERE r.tenant_id = t.id AND r.key = p_key
        UNION
        SELECT b.id FROM blobs b WHERE b.scope = p_scope AND b.state = 'live' AND b.digest = p_digest
    );
    -- Locked by id alone, in id order (the order every writer uses), in a statement of its own: the
    -- next statement's snapshot sees every locked row as of its lock.
    PERFORM 1 FROM blobs b WHERE b.id = ANY(ids) ORDER BY b.id FOR UPDATE;
    RETURN QUERY
        SELECT t.id, t.used_bytes, t.used_objects, t.max_bytes, t.max_objects,
               b.id, b.scope, b.digest, b.state,
               EXISTS (SELECT 1 FROM refs h WHERE h.tenant_id = t.id AND h.blob_id = b.id),
               o.key, o.size, o.created_at
        FROM (SELECT 1) AS one
        LEFT JOIN blobs b ON b.id = ANY(ids)
        LEFT JOIN refs o ON o.blob_id = b.id AND o.tenant_id = t.id AND o.key = p_key;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION blobstore_bind_lookup(varchar, varchar, varchar, varchar, timestamp)")
