"""Upload leases: an ``uploading`` blob is reclaimable only once its uploader stopped renewing its lease.

Also sorts object keys by code point on PostgreSQL (as SQLite does), so fsck can
walk blob rows in the same order as a storage listing.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 11:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("blobs") as batch:
        batch.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=False), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("blobs", "object_key", type_=sa.String(200, collation="C"), existing_nullable=False)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("blobs", "object_key", type_=sa.String(200), existing_nullable=False)
    with op.batch_alter_table("blobs") as batch:
        batch.drop_column("lease_expires_at")
