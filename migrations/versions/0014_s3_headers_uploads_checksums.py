"""S3 API: the response headers an object stores (Content-Disposition, Content-Encoding, Content-Language,
Cache-Control, Expires), on its reference and on the multipart upload that will make it; and completed multipart
uploads kept (when, the digest and S3 ETag of what they made) to answer a retried completion; multipart checksums
(the upload's algorithm, each part's value, and checksum values long enough for a COMPOSITE ``<base64>-N``);
the part sizes of a multipart object, beside its ETag (GetObject ``?partNumber``).

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


def _upload_columns() -> list[sa.Column[object]]:
    """What an upload gains: its checksum algorithm, and what it keeps once completed (fresh columns: a column
    belongs to one table)."""
    return [
        sa.Column("completed_at", sa.DateTime(), nullable=True),
        sa.Column("digest", sa.String(length=64), nullable=True),
        sa.Column("etag", sa.String(length=48), nullable=True),
        sa.Column("checksum_algorithm", sa.String(length=16), nullable=True),
    ]


def _widen_checksums(old: int, new: int) -> None:
    with op.batch_alter_table("checksums") as batch_op:
        batch_op.alter_column("value", existing_type=sa.String(length=old), type_=sa.String(length=new))


def upgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as batch_op:
            batch_op.add_column(sa.Column("headers", sa.JSON(), nullable=False, server_default=sa.text("'{}'")))
    with op.batch_alter_table("multipart_uploads") as batch_op:
        for column in _upload_columns():
            batch_op.add_column(column)
    with op.batch_alter_table("multipart_parts") as batch_op:
        batch_op.add_column(sa.Column("checksum", sa.String(length=44), nullable=True))
    _widen_checksums(44, 64)
    with op.batch_alter_table("etags") as batch_op:
        batch_op.add_column(sa.Column("part_sizes", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("etags") as batch_op:
        batch_op.drop_column("part_sizes")
    op.execute("DELETE FROM checksums WHERE value LIKE '%-%'")  # COMPOSITE checksums do not fit
    _widen_checksums(64, 44)
    with op.batch_alter_table("multipart_parts") as batch_op:
        batch_op.drop_column("checksum")
    with op.batch_alter_table("multipart_uploads") as batch_op:
        for column in _upload_columns():
            batch_op.drop_column(column.name)
    for table in _TABLES:
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_column("headers")
