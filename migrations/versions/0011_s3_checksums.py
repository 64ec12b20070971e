"""S3 API: the additional checksums (``x-amz-checksum-*``) a tenant's uploads carried, verified, per digest.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 05:45:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "checksums",
        sa.Column("tenant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("algorithm", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=44), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_checksums_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("tenant_id", "digest", "algorithm", name=op.f("pk_checksums")),
    )


def downgrade() -> None:
    op.drop_table("checksums")
