"""stripe_events becomes an inbox; subscription history notes; grace-period bookkeeping

Revision ID: 0004
Revises: 0001
Create Date: 2026-11-28 17:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0001"
branch_labels = None
depends_on = None

# Outcomes of the old single-step handler that changed something.
_APPLIED = "('provisioned', 'updated', 'canceled', 'renewed', 'past_due')"


def upgrade() -> None:
    op.add_column(
        "stripe_events",
        sa.Column(
            "state",
            sa.String(length=16),
            server_default=sa.text("'received'"),
            nullable=False,
            comment="received, applied, ignored or failed",
        ),
    )
    op.add_column(
        "stripe_events",
        sa.Column("error", sa.Text(), nullable=True, comment="why processing failed (failed), or last transient error"),
    )
    op.add_column(
        "stripe_events", sa.Column("payload", sa.Text(), nullable=True, comment="the raw body, as signed by Stripe")
    )
    op.add_column(
        "stripe_events",
        sa.Column(
            "attempts",
            sa.Integer(),
            server_default=sa.text("0"),
            nullable=False,
            comment="processing attempts that raised",
        ),
    )
    op.add_column(
        "stripe_events",
        sa.Column(
            "next_attempt_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="the sweep republishes a received row from then",
        ),
    )
    op.add_column("stripe_events", sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True))
    op.alter_column(
        "stripe_events",
        "outcome",
        existing_type=sa.String(length=64),
        nullable=True,
        comment="what applying did (provisioned, ...), or why it was ignored (stale, ...)",
    )
    # Rows from before the inbox were processed in one step; their payload was never kept.
    op.execute(
        f"UPDATE stripe_events SET state = CASE WHEN outcome IN {_APPLIED} THEN 'applied'"
        " WHEN outcome = 'processing' THEN 'failed' ELSE 'ignored' END, processed_at = received_at"
    )
    op.create_check_constraint(
        op.f("ck_stripe_events_state"), "stripe_events", "state IN ('received', 'applied', 'ignored', 'failed')"
    )
    op.create_index("ix_stripe_events_state_received_at", "stripe_events", ["state", "received_at"], unique=False)

    op.add_column(
        "subscription_changes",
        sa.Column("note", sa.String(length=200), nullable=True, comment="why, when not a plain tier move"),
    )
    op.add_column(
        "subscriptions",
        sa.Column(
            "grace_recorded_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="when the end of the past-due grace period was written to subscription_changes",
        ),
    )


def downgrade() -> None:
    op.drop_column("subscriptions", "grace_recorded_at")
    op.drop_column("subscription_changes", "note")
    op.drop_index("ix_stripe_events_state_received_at", table_name="stripe_events")
    op.drop_constraint(op.f("ck_stripe_events_state"), "stripe_events", type_="check")
    op.execute("UPDATE stripe_events SET outcome = state WHERE outcome IS NULL")
    op.alter_column("stripe_events", "outcome", existing_type=sa.String(length=64), nullable=False, comment=None)
    for column in ("processed_at", "next_attempt_at", "attempts", "payload", "error", "state"):
        op.drop_column("stripe_events", column)
