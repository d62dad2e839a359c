"""provider usage snapshots: OpenRouter's /key figures, read by beat, for reconciliation

Revision ID: 0006
Revises: 0004
Create Date: 2026-11-28 17:19:51.558800
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "provider_usage_snapshots",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column(
            "taken_at", sa.DateTime(timezone=True), nullable=False, comment="when the provider's answer was received"
        ),
        sa.Column("usage_usd", sa.Numeric(), nullable=False, comment="the key's cumulative usage"),
        sa.Column("usage_daily", sa.Numeric(), nullable=False, comment="the key's usage in the UTC day of taken_at"),
        sa.Column(
            "usage_monthly", sa.Numeric(), nullable=False, comment="the key's usage in the UTC month of taken_at"
        ),
        sa.Column(
            "credits_usage_usd",
            sa.Numeric(),
            nullable=True,
            comment="the account's total_usage from /credits, when a management key is configured",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_usage_snapshots")),
    )
    op.create_index("ix_provider_usage_snapshots_taken_at", "provider_usage_snapshots", ["taken_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_provider_usage_snapshots_taken_at", table_name="provider_usage_snapshots")
    op.drop_table("provider_usage_snapshots")
