"""meta: small deployment facts (the Redis epoch)

Revision ID: 0003_meta
Revises: 0002_dashboard
Create Date: 2026-11-26 03:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_meta"
down_revision = "0002_dashboard"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "meta",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_meta")),
    )


def downgrade() -> None:
    op.drop_table("meta")
