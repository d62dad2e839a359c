"""cost optimisations: response cache, cache hits, preprocessing and batched analyses in the ledger

Revision ID: 0005
Revises: 0003
Create Date: 2026-11-28 17:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "response_cache",
        sa.Column("key", sa.String(length=64), nullable=False, comment="sha256 of every key part below"),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("prompt_version", sa.String(length=64), nullable=False, comment="hash of the prompt template"),
        sa.Column("models", sa.Text(), nullable=False, comment="the model chain, in order"),
        sa.Column("max_tokens", sa.Integer(), nullable=False),
        sa.Column("temperature", sa.Float(), nullable=False),
        sa.Column("content_sha256", sa.String(length=64), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("model_used", sa.String(length=128), nullable=True),
        sa.Column("used_fallback", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True, comment="the original job's note (preprocessing)"),
        sa.Column("cost_usd", sa.Numeric(), nullable=False, comment="what the original answer cost"),
        sa.Column("source_job_id", sa.String(length=64), nullable=False, comment="the job that bought it"),
        sa.Column("hits", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_response_cache")),
    )
    op.create_index("ix_response_cache_expires_at", "response_cache", ["expires_at"], unique=False)
    op.add_column(
        "llm_calls",
        sa.Column(
            "saved_usd",
            sa.Numeric(),
            server_default=sa.text("0"),
            nullable=False,
            comment="a cache hit: what the cached answer originally cost",
        ),
    )
    op.add_column(
        "llm_calls",
        sa.Column(
            "purpose",
            sa.String(length=16),
            server_default=sa.text("'answer'"),
            nullable=False,
            comment="answer; preprocess (a chunk of long content); batch or part (a batched analysis)",
        ),
    )
    # A cache hit is an llm_calls row of its own kind.
    op.drop_constraint(op.f("ck_llm_calls_status"), "llm_calls", type_="check")
    op.create_check_constraint(
        op.f("ck_llm_calls_status"),
        "llm_calls",
        "status IN ('pending', 'ok', 'retry', 'fallback', 'fatal', 'unknown', 'cache_hit')",
    )
    op.alter_column(
        "llm_calls",
        "status",
        existing_type=sa.String(length=16),
        existing_nullable=False,
        comment="pending, ok, retry, fallback, fatal, unknown or cache_hit",
        existing_comment="pending, ok, retry, fallback, fatal or unknown",
    )
    op.alter_column(
        "jobs",
        "type",
        existing_type=sa.String(length=32),
        type_=sa.String(length=64),
        existing_nullable=False,
        existing_comment="cinematic, summary, ...",
        comment="cinematic, summary, ... (a batched analysis: summary+keywords+...)",
    )
    op.add_column(
        "jobs",
        sa.Column(
            "cache_hit",
            sa.Boolean(),
            server_default=sa.text("false"),
            nullable=False,
            comment="served from the response cache",
        ),
    )


def downgrade() -> None:
    op.drop_column("jobs", "cache_hit")
    op.execute("DELETE FROM llm_calls WHERE status = 'cache_hit'")
    op.drop_constraint(op.f("ck_llm_calls_status"), "llm_calls", type_="check")
    op.create_check_constraint(
        op.f("ck_llm_calls_status"),
        "llm_calls",
        "status IN ('pending', 'ok', 'retry', 'fallback', 'fatal', 'unknown')",
    )
    op.alter_column(
        "jobs",
        "type",
        existing_type=sa.String(length=64),
        type_=sa.String(length=32),
        existing_nullable=False,
        existing_comment="cinematic, summary, ... (a batched analysis: summary+keywords+...)",
        comment="cinematic, summary, ...",
    )
    op.alter_column(
        "llm_calls",
        "status",
        existing_type=sa.String(length=16),
        existing_nullable=False,
        comment="pending, ok, retry, fallback, fatal or unknown",
        existing_comment="pending, ok, retry, fallback, fatal, unknown or cache_hit",
    )
    op.drop_column("llm_calls", "purpose")
    op.drop_column("llm_calls", "saved_usd")
    op.drop_index("ix_response_cache_expires_at", table_name="response_cache")
    op.drop_table("response_cache")
