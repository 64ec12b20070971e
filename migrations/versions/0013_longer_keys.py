"""Keys of up to 1,088 bytes: an S3 key of 1,024 bytes in a bucket of 63 is the native key ``<bucket>/<key>``.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 06:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def _key(length: int) -> sa.types.TypeEngine[str]:
    return sa.String(length=length).with_variant(sa.String(length=length, collation="C"), "postgresql")


#: Every column that holds a key: the native keys of refs, and the keys multipart uploads will complete to.
_TABLES = ("refs", "multipart_uploads")


def _resize(old: int, new: int) -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as batch_op:
            batch_op.alter_column("key", existing_type=_key(old), type_=_key(new), existing_nullable=False)


def upgrade() -> None:
    _resize(1024, 1088)


def downgrade() -> None:
    _resize(1088, 1024)
