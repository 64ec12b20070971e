"""Spooled blobs: the node whose spool holds a blob's object while object storage was unreachable (docs/spool.md).

NULL for a blob whose object is in object storage; a node id (BLOBSTORE_NODE_ID) until that node drains it.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 11:50:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("blobs") as batch:
        batch.add_column(sa.Column("spooled_on", sa.String(64), nullable=True))
    op.create_index("ix_blobs_spooled_on", "blobs", ["spooled_on"])


def downgrade() -> None:
    op.drop_index("ix_blobs_spooled_on", table_name="blobs")
    with op.batch_alter_table("blobs") as batch:
        batch.drop_column("spooled_on")
