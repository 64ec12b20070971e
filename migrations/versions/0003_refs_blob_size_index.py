"""Refs index by (blob_id, tenant_id, size), replacing (blob_id, tenant_id): cost reports read it alone.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 09:30:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_refs_blob_id_tenant_id_size", "refs", ["blob_id", "tenant_id", "size"], unique=False)
    op.drop_index("ix_refs_blob_id_tenant_id", table_name="refs")


def downgrade() -> None:
    op.create_index("ix_refs_blob_id_tenant_id", "refs", ["blob_id", "tenant_id"], unique=False)
    op.drop_index("ix_refs_blob_id_tenant_id_size", table_name="refs")
