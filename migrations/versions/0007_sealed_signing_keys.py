"""Signing keys sealed with a secret kept outside the database; the clear-text keys are deleted.

Every URL signed before this revision stops working (its key is gone). The
table is recreated empty: ``secret`` becomes ``sealed_secret`` and
``retired_at`` (no longer signs, still verifies) becomes ``superseded_at``,
as retiring a key now means deleting it. The downgrade likewise leaves an empty table.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 20:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table("signing_keys")
    op.create_table(
        "signing_keys",
        sa.Column("id", sa.String(length=16), nullable=False),
        sa.Column("sealed_secret", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("superseded_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signing_keys")),
    )


def downgrade() -> None:
    op.drop_table("signing_keys")
    op.create_table(
        "signing_keys",
        sa.Column("id", sa.String(length=16), nullable=False),
        sa.Column("secret", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("retired_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signing_keys")),
    )
