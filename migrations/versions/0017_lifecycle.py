"""Lifecycle expiry: per-tenant rules by key prefix, and a key's own expiry (blobstore.maintenance.lifecycle).

``lifecycle_rules`` holds at most one rule per (tenant, prefix): when its keys expire, and when S3 multipart
uploads of its keys are aborted (either may be NULL); ``refs.expires_at`` is NULL for a key put without
``expires_in``.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 11:50:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

_KEY = sa.String(1088).with_variant(sa.String(1088, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "lifecycle_rules",
        sa.Column("tenant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("prefix", _KEY, nullable=False),
        sa.Column("expire_after", sa.BigInteger(), nullable=True),
        sa.Column("abort_multipart_after", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=False), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name="fk_lifecycle_rules_tenant_id_tenants"),
        sa.PrimaryKeyConstraint("tenant_id", "prefix", name="pk_lifecycle_rules"),
    )
    with op.batch_alter_table("refs") as batch:
        batch.add_column(sa.Column("expires_at", sa.DateTime(timezone=False), nullable=True))
    op.create_index("ix_refs_expires_at", "refs", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_refs_expires_at", table_name="refs")
    with op.batch_alter_table("refs") as batch:
        batch.drop_column("expires_at")
    op.drop_table("lifecycle_rules")
