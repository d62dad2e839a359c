"""trust boundary: request hash for idempotency, notification record

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 17:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "jobs",
        sa.Column(
            "request_sha256",
            sa.String(length=64),
            nullable=True,
            comment="sha256 of kind, type and content; a reused idempotency key must match it",
        ),
    )
    op.add_column(
        "jobs",
        sa.Column(
            "notified_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="when the final JobResult was sent to the notify task (once)",
        ),
    )


def downgrade() -> None:
    op.drop_column("jobs", "notified_at")
    op.drop_column("jobs", "request_sha256")
