"""S3 multipart uploads: the uploads in progress and their staged parts (each part row holds a reference on its
blob), and ETags long enough for a multipart object's ``<md5>-N``.

Revision ID: 0012
Revises: 0011 (S3 checksums)
Create Date: 2026-12-07 05:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_KEY = sa.String(length=1024).with_variant(sa.String(length=1024, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "multipart_uploads",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", _ID, nullable=False),
        sa.Column("bucket", sa.String(length=63), nullable=False),
        sa.Column("key", _KEY, nullable=False),
        sa.Column("content_type", sa.String(length=255), nullable=True),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("touched_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_multipart_uploads_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_multipart_uploads")),
    )
    with op.batch_alter_table("multipart_uploads", schema=None) as batch_op:
        batch_op.create_index(
            "ix_multipart_uploads_tenant_id_bucket_key_id", ["tenant_id", "bucket", "key", "id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_multipart_uploads_touched_at"), ["touched_at"], unique=False)
    op.create_table(
        "multipart_parts",
        sa.Column("upload_id", sa.String(length=64), nullable=False),
        sa.Column("part_number", sa.Integer(), nullable=False),
        sa.Column("blob_id", _ID, nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("md5", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["blob_id"], ["blobs.id"], name=op.f("fk_multipart_parts_blob_id_blobs")),
        sa.ForeignKeyConstraint(
            ["upload_id"], ["multipart_uploads.id"], name=op.f("fk_multipart_parts_upload_id_multipart_uploads")
        ),
        sa.PrimaryKeyConstraint("upload_id", "part_number", name=op.f("pk_multipart_parts")),
    )
    with op.batch_alter_table("multipart_parts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_multipart_parts_blob_id"), ["blob_id"], unique=False)
    with op.batch_alter_table("etags", schema=None) as batch_op:
        batch_op.alter_column("md5", existing_type=sa.String(length=32), type_=sa.String(length=40))


def downgrade() -> None:
    with op.batch_alter_table("etags", schema=None) as batch_op:
        batch_op.alter_column("md5", existing_type=sa.String(length=40), type_=sa.String(length=32))
    with op.batch_alter_table("multipart_parts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_multipart_parts_blob_id"))
    op.drop_table("multipart_parts")
    with op.batch_alter_table("multipart_uploads", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_multipart_uploads_touched_at"))
        batch_op.drop_index("ix_multipart_uploads_tenant_id_bucket_key_id")
    op.drop_table("multipart_uploads")
