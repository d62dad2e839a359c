"""The tables operators query. Money is NUMERIC; idempotency is a unique constraint."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, CreatedAt, Money, UtcTime

JOB_STATUSES = ("queued", "running", "succeeded", "failed", "rejected")
# pending: written before the request left; unknown: its worker died before the answer was recorded.
CALL_STATUSES = ("pending", "ok", "retry", "fallback", "fatal", "unknown", "cache_hit")
COST_SOURCES = ("provider", "catalog", "config", "estimate", "none")
SUBSCRIPTION_STATUSES = ("active", "past_due", "canceled")
STRIPE_EVENT_STATES = ("received", "applied", "ignored", "failed")


class Job(Base):
    """One submitted script or analysis. The id is the Celery task id."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(16), comment="script or analysis")
    type: Mapped[str] = mapped_column(
        String(64), comment="cinematic, summary, ... (a batched analysis: summary+keywords+...)"
    )
    tier: Mapped[str] = mapped_column(String(32), comment="tier at submission")
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[Any | None] = mapped_column(JSONB)
    retry_after: Mapped[int | None]
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    request_sha256: Mapped[str | None] = mapped_column(
        String(64), comment="sha256 of kind, type and content; a reused idempotency key must match it"
    )
    notify: Mapped[str | None] = mapped_column(String(200), comment="task name sent the final JobResult")
    content_chars: Mapped[int] = mapped_column(comment="size of the submitted content")
    content: Mapped[str | None] = mapped_column(Text, comment="the submitted input, what the tier task runs on")
    result_content: Mapped[str | None] = mapped_column(Text)
    model_used: Mapped[str | None] = mapped_column(String(128))
    used_fallback: Mapped[bool] = mapped_column(server_default=text("false"))
    prompt_tokens: Mapped[int] = mapped_column(server_default=text("0"))
    completion_tokens: Mapped[int] = mapped_column(server_default=text("0"))
    cost_usd: Mapped[Money] = mapped_column(server_default=text("0"))
    quota_period: Mapped[date | None] = mapped_column(Date, comment="period the quota unit was taken from")
    quota_refunded: Mapped[bool] = mapped_column(server_default=text("false"))
    reserved_usd: Mapped[Money] = mapped_column(
        server_default=text("0"), comment="maximum cost held against the spend cap until settlement"
    )
    published_at: Mapped[UtcTime | None] = mapped_column(comment="last time a run_job message was published")
    lease_until: Mapped[UtcTime | None] = mapped_column(comment="a running tier task owns the job until then")
    deliveries: Mapped[int] = mapped_column(server_default=text("0"), comment="times a tier task claimed it")
    cache_hit: Mapped[bool] = mapped_column(server_default=text("false"), comment="served from the response cache")
    created_at: Mapped[CreatedAt]
    started_at: Mapped[UtcTime | None]
    finished_at: Mapped[UtcTime | None]
    notified_at: Mapped[UtcTime | None] = mapped_column(
        comment="when the final JobResult was sent to the notify task (once)"
    )

    __table_args__ = (
        CheckConstraint(f"status IN {JOB_STATUSES}", name="status"),
        CheckConstraint("kind IN ('script', 'analysis')", name="kind"),
        UniqueConstraint("user_id", "idempotency_key"),
        Index("ix_jobs_created_at", "created_at"),
        Index("ix_jobs_unfinished", "status", "lease_until", postgresql_where=text("status IN ('queued', 'running')")),
        Index("ix_jobs_finished_at", "finished_at"),
    )


class LlmCall(Base):
    """One OpenRouter attempt: written ``pending`` before the request leaves, completed after."""

    __tablename__ = "llm_calls"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(comment="1-based, across models and redeliveries")
    tier: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(128), comment="model requested")
    model_served: Mapped[str | None] = mapped_column(String(128), comment="response.model")
    prompt_tokens: Mapped[int] = mapped_column(server_default=text("0"))
    completion_tokens: Mapped[int] = mapped_column(server_default=text("0"))
    cost_usd: Mapped[Money] = mapped_column(server_default=text("0"))
    cost_source: Mapped[str] = mapped_column(
        String(16),
        comment="provider (usage.cost), catalog (model_prices), config (tier catalog), estimate (unknown) or none",
    )
    status: Mapped[str] = mapped_column(String(16), comment="pending, ok, retry, fallback, fatal, unknown or cache_hit")
    error_class: Mapped[str | None] = mapped_column(String(64))
    http_status: Mapped[int | None]
    latency_ms: Mapped[int] = mapped_column(server_default=text("0"))
    generation_id: Mapped[str | None] = mapped_column(String(128), comment="OpenRouter generation id")
    estimate_usd: Mapped[Money] = mapped_column(
        server_default=text("0"), comment="most this attempt can cost: the cost of an unknown attempt"
    )
    response_content: Mapped[str | None] = mapped_column(
        Text, comment="an ok attempt's answer, so a later delivery settles without a second call"
    )
    saved_usd: Mapped[Money] = mapped_column(
        server_default=text("0"), comment="a cache hit: what the cached answer originally cost"
    )
    purpose: Mapped[str] = mapped_column(
        String(16),
        server_default=text("'answer'"),
        comment="answer; preprocess (a chunk of long content); batch or part (a batched analysis)",
    )
    created_at: Mapped[CreatedAt]
    completed_at: Mapped[UtcTime | None]

    __table_args__ = (
        UniqueConstraint("job_id", "attempt"),
        CheckConstraint(f"cost_source IN {COST_SOURCES}", name="cost_source"),
        CheckConstraint(f"status IN {CALL_STATUSES}", name="status"),
        Index("ix_llm_calls_created_at", "created_at"),
        Index("ix_llm_calls_pending", "job_id", postgresql_where=text("status = 'pending'")),
    )


class Subscription(Base):
    """A user's current subscription. No row (or a lapsed one) means the default tier."""

    __tablename__ = "subscriptions"

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tier: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    stripe_customer_id: Mapped[str | None] = mapped_column(String(64))
    stripe_subscription_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    current_period_start: Mapped[UtcTime | None]
    current_period_end: Mapped[UtcTime | None]
    past_due_since: Mapped[UtcTime | None]
    state_at: Mapped[UtcTime | None] = mapped_column(
        comment="creation time of the newest Stripe event applied; older events never overwrite"
    )
    grace_recorded_at: Mapped[UtcTime | None] = mapped_column(
        comment="when the end of the past-due grace period was written to subscription_changes"
    )
    created_at: Mapped[CreatedAt]
    updated_at: Mapped[CreatedAt]

    __table_args__ = (CheckConstraint(f"status IN {SUBSCRIPTION_STATUSES}", name="status"),)


class SubscriptionChange(Base):
    """History of tier moves, for upgrade and downgrade counts."""

    __tablename__ = "subscription_changes"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64), index=True)
    from_tier: Mapped[str] = mapped_column(String(32))
    to_tier: Mapped[str] = mapped_column(String(32))
    direction: Mapped[str] = mapped_column(String(16), comment="upgrade, downgrade or lateral")
    source: Mapped[str] = mapped_column(String(32), comment="operator or stripe")
    note: Mapped[str | None] = mapped_column(String(200), comment="why, when not a plain tier move")
    changed_at: Mapped[CreatedAt]


class QuotaUsage(Base):
    """Units and spend of one user in one quota period. Keyed by period, so resets are free."""

    __tablename__ = "quota_usage"

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    period_start: Mapped[date] = mapped_column(Date, primary_key=True)
    period_end: Mapped[date] = mapped_column(Date, comment="exclusive")
    scripts_used: Mapped[int] = mapped_column(server_default=text("0"))
    analyses_used: Mapped[int] = mapped_column(server_default=text("0"))
    spend_usd: Mapped[Money] = mapped_column(server_default=text("0"), comment="settled LLM cost")
    reserved_usd: Mapped[Money] = mapped_column(
        server_default=text("0"), comment="maximum cost of admitted, unsettled jobs"
    )
    updated_at: Mapped[CreatedAt]

    __table_args__ = (CheckConstraint("scripts_used >= 0 AND analyses_used >= 0", name="non_negative"),)


class QuotaPeriodSummary(Base):
    """A closed period per user, written once by the monthly reset."""

    __tablename__ = "quota_period_summaries"

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    period_start: Mapped[date] = mapped_column(Date, primary_key=True)
    period_end: Mapped[date] = mapped_column(Date)
    tier: Mapped[str] = mapped_column(String(32))
    scripts_used: Mapped[int]
    analyses_used: Mapped[int]
    spend_usd: Mapped[Money]
    closed_at: Mapped[CreatedAt]


class Alert(Base):
    """An alert raised once per subject, threshold and period."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), comment="spend_soft_cap, cost_daily, cost_monthly")
    subject: Mapped[str] = mapped_column(String(128), comment="user id or 'system'")
    period: Mapped[str] = mapped_column(String(32))
    threshold: Mapped[Money]
    value: Mapped[Money]
    created_at: Mapped[CreatedAt]

    __table_args__ = (UniqueConstraint("kind", "subject", "period", "threshold"),)


class StripeEvent(Base):
    """The inbox: each verified Stripe event, kept before Stripe is answered, processed once."""

    __tablename__ = "stripe_events"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(64))
    created: Mapped[UtcTime] = mapped_column(comment="event.created from Stripe")
    state: Mapped[str] = mapped_column(
        String(16), server_default=text("'received'"), comment="received, applied, ignored or failed"
    )
    outcome: Mapped[str | None] = mapped_column(
        String(64), comment="what applying did (provisioned, ...), or why it was ignored (stale, ...)"
    )
    error: Mapped[str | None] = mapped_column(Text, comment="why processing failed (failed), or last transient error")
    payload: Mapped[str | None] = mapped_column(Text, comment="the raw body, as signed by Stripe")
    attempts: Mapped[int] = mapped_column(server_default=text("0"), comment="processing attempts that raised")
    next_attempt_at: Mapped[UtcTime | None] = mapped_column(comment="the sweep republishes a received row from then")
    received_at: Mapped[CreatedAt]
    processed_at: Mapped[UtcTime | None]

    __table_args__ = (
        CheckConstraint(f"state IN {STRIPE_EVENT_STATES}", name="state"),
        Index("ix_stripe_events_state_received_at", "state", "received_at"),
    )


class ModelPrice(Base):
    """OpenRouter's price list, per token, refreshed by `litink models sync` and beat."""

    __tablename__ = "model_prices"

    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    prompt_price: Mapped[Money]
    completion_price: Mapped[Money]
    request_price: Mapped[Money] = mapped_column(server_default=text("0"))
    context_length: Mapped[int | None]
    listed: Mapped[bool] = mapped_column(comment="present in the latest /models answer")
    synced_at: Mapped[UtcTime]


class ResponseCache(Base):
    """An answer the provider was paid for once, served again to identical requests until it expires."""

    __tablename__ = "response_cache"

    key: Mapped[str] = mapped_column(String(64), primary_key=True, comment="sha256 of every key part below")
    kind: Mapped[str] = mapped_column(String(16))
    type: Mapped[str] = mapped_column(String(64))
    prompt_version: Mapped[str] = mapped_column(String(64), comment="hash of the prompt template")
    models: Mapped[str] = mapped_column(Text, comment="the model chain, in order")
    max_tokens: Mapped[int]
    temperature: Mapped[float] = mapped_column(Float)
    content_sha256: Mapped[str] = mapped_column(String(64))
    answer: Mapped[str] = mapped_column(Text)
    model_used: Mapped[str | None] = mapped_column(String(128))
    used_fallback: Mapped[bool] = mapped_column(server_default=text("false"))
    detail: Mapped[str | None] = mapped_column(Text, comment="the original job's note (preprocessing)")
    cost_usd: Mapped[Money] = mapped_column(comment="what the original answer cost")
    source_job_id: Mapped[str] = mapped_column(String(64), comment="the job that bought it")
    hits: Mapped[int] = mapped_column(server_default=text("0"))
    created_at: Mapped[CreatedAt]
    expires_at: Mapped[UtcTime]

    __table_args__ = (Index("ix_response_cache_expires_at", "expires_at"),)


class ProviderUsageSnapshot(Base):
    """OpenRouter's own figures for our key (GET /key), read every few minutes by beat, so the
    provider's spend over a window is a difference of two snapshots (workers/reporting/reconcile.py)."""

    __tablename__ = "provider_usage_snapshots"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    taken_at: Mapped[UtcTime] = mapped_column(comment="when the provider's answer was received")
    usage_usd: Mapped[Money] = mapped_column(comment="the key's cumulative usage")
    usage_daily: Mapped[Money] = mapped_column(comment="the key's usage in the UTC day of taken_at")
    usage_monthly: Mapped[Money] = mapped_column(comment="the key's usage in the UTC month of taken_at")
    credits_usage_usd: Mapped[Money | None] = mapped_column(
        comment="the account's total_usage from /credits, when a management key is configured"
    )

    __table_args__ = (Index("ix_provider_usage_snapshots_taken_at", "taken_at"),)
