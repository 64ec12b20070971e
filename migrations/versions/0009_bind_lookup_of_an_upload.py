"""PostgreSQL: ``blobstore_bind_lookup`` also finds and locks the caller's own upload.

A single put of new bytes commits its upload the way a dedup hit binds (blobstore.db.hot_path): one call
reads and locks what the binding may touch. For that the function takes a sixth argument, the id of the
caller's ``uploading`` blob row (NULL when there is none), which joins the blobs found and locked in id
order. Nothing to do on SQLite.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 02:40:00.000000
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

FUNCTION = """
CREATE OR REPLACE FUNCTION blobstore_bind_lookup(
    p_tenant varchar, p_scope varchar, p_key varchar, p_digest varchar, p_now timestamp, p_upload bigint
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
        UNION
        SELECT b.id FROM blobs b WHERE b.id = p_upload
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
_PREVIOUS = "blobstore_bind_lookup(varchar, varchar, varchar, varchar, timestamp)"
_THIS = "blobstore_bind_lookup(varchar, varchar, varchar, varchar, timestamp, bigint)"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION {_PREVIOUS}")
        op.execute(FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION {_THIS}")
        op.execute(_previous_function())


def _previous_function() -> str:
    """The function as revision 0008 created it."""
    path = Path(__file__).with_name("0008_bind_lookup_function.py")
    spec = importlib.util.spec_from_file_location("bind_lookup_0008", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.FUNCTION)
