"""Storage classes: each blob's class and the day it was last read; lifecycle rules gain a transition.

``blobs.storage_class`` is NULL for a blob in STANDARD (every blob stored before this revision);
``blobs.last_read_at`` is the UTC day (at midnight) of the blob's latest recorded read, NULL if never read
since; ``blobs.moving_to`` is the class a move began copying the object to, NULL once recorded.
``lifecycle_rules.transition_after`` and ``storage_class`` are NULL for a rule that moves nothing
(blobstore.maintenance.transitions).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 12:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("blobs") as batch:
        batch.add_column(sa.Column("storage_class", sa.String(32), nullable=True))
        batch.add_column(sa.Column("last_read_at", sa.DateTime(timezone=False), nullable=True))
        batch.add_column(sa.Column("moving_to", sa.String(32), nullable=True))
    with op.batch_alter_table("lifecycle_rules") as batch:
        batch.add_column(sa.Column("transition_after", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("storage_class", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("lifecycle_rules") as batch:
        batch.drop_column("storage_class")
        batch.drop_column("transition_after")
    with op.batch_alter_table("blobs") as batch:
        batch.drop_column("moving_to")
        batch.drop_column("last_read_at")
        batch.drop_column("storage_class")
