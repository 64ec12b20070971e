"""Framed blobs: each blob's frame index and the length of its stored object (blobstore.storage.frames).

Both NULL for a blob stored before frames: its object is its bytes, raw, read as one stream.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 08:50:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("blobs") as batch:
        batch.add_column(sa.Column("frames", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("stored_size", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("blobs") as batch:
        batch.drop_column("stored_size")
        batch.drop_column("frames")
