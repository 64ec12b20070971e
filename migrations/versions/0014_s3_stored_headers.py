"""S3 API: the response headers an object stores (Content-Disposition, Content-Encoding, Content-Language,
Cache-Control, Expires), on its reference and on the multipart upload that will make it.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 08:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_TABLES = ("refs", "multipart_uploads")


def upgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as batch_op:
            batch_op.add_column(sa.Column("headers", sa.JSON(), nullable=False, server_default=sa.text("'{}'")))


def downgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_column("headers")
