"""Typed settings, read once from the environment and `.env`.

Nothing else in the project reads ``os.environ``: ask :func:`get_settings`.
Secrets are :class:`pydantic.SecretStr`, so ``repr()`` and logs show ``**********``.
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

OPENROUTER_BASE_URL = "https://openrouter.ai/api/v1"
DATA_DIR = Path(".data")  # local state: embedded servers, flower.db, the beat schedule
DEFAULT_VISIBILITY_TIMEOUT = 3600
DEFAULT_METRICS_PORT = 9808
DEFAULT_WEBHOOK_PORT = 8081
LOCAL_ADDRESS = "127.0.0.1"  # operator endpoints listen here unless told otherwise
DEFAULT_NOTIFY_QUEUES = ("celery",)


POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")
REDIS_SCHEMES = ("redis", "rediss", "unix", "sentinel")


class SettingError(ValueError):
    """Raised when a setting is missing or unusable; the message names it and says what to do."""


def masked_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, for messages and logs. Each part of a
    Sentinel list (``sentinel://...;sentinel://...``) is masked."""
    if ";" in url:
        return ";".join(masked_url(part) for part in url.split(";"))
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.hostname or ""
        netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return "<unparsable URL>"


class Settings(BaseSettings):
    # hide_input_in_errors: a rejected DATABASE_URL may hold a password.
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True, hide_input_in_errors=True)

    # Services. Unset (or empty) means none: only the demo, the tests and `litink --embedded`
    # start embedded ones (see devtools.embedded); every other command says which is missing.
    database_url: str | None = None
    redis_url: str | None = None
    # With a `sentinel://host:26379;sentinel://host2:26379` REDIS_URL: the Sentinel master name.
    redis_sentinel_master: str | None = None

    # OpenRouter.
    openrouter_api_key: SecretStr | None = None
    openrouter_base_url: str = OPENROUTER_BASE_URL
    openrouter_referer: str = "https://litink.ai"
    openrouter_title: str = "LitinkAI"
    openrouter_connect_timeout: float = 5.0
    openrouter_read_timeout: float = 60.0
    # Idle HTTP connections to OpenRouter a worker process keeps open (the SDK keeps 100):
    # with more calls in flight than that, each call beyond it opens a new connection.
    openrouter_keepalive_connections: int = Field(default=256, ge=0)
    # A Retry-After longer than this gives the worker slot back (a Celery retry with countdown).
    retry_in_process_cap_seconds: float = 10.0
    # Shared provider budget, delays calls rather than rejecting them; 0 turns a limit off.
    provider_requests_per_minute: int = 0
    provider_concurrency_per_model: int = 0
    # Only /api/v1/credits needs it (account-wide credits); unset, reconciliation uses /key alone.
    openrouter_management_key: SecretStr | None = None

    # Shared model health (workers/llm/model_health.py): a model failing beyond either
    # threshold is skipped by every worker for the cool-down, then one probe call decides.
    model_health_enabled: bool = True
    model_health_consecutive_failures: int = Field(default=5, ge=1)
    model_health_error_rate: float = Field(default=0.5, gt=0, le=1)
    model_health_window_seconds: int = Field(default=60, ge=1)
    model_health_min_calls: int = Field(default=10, ge=1)
    model_health_cooldown_seconds: float = Field(default=30.0, gt=0)
    # How long a worker process trusts its last look at a healthy model, and batches that
    # model's successes, before asking Redis again (0: ask on every call).
    model_health_view_seconds: float = Field(default=1.0, ge=0)
    # Task events (for Flower) are published in batches at most this far apart.
    events_flush_seconds: float = Field(default=0.25, ge=0)

    # Response cache single-flight (workers/llm/single_flight.py): identical requests in
    # flight wait this long for the leader's answer before calling the provider themselves.
    single_flight_wait_seconds: float = Field(default=60.0, ge=0)
    single_flight_lock_seconds: float = Field(default=180.0, gt=0)

    # Celery. A message fetched but not acked within this many seconds is delivered again.
    visibility_timeout: int = DEFAULT_VISIBILITY_TIMEOUT
    # Hard limit of one tier task; with the threads pool it is enforced by the HTTP timeouts.
    task_time_limit: int = 600

    # The ledger (docs/architecture.md). A running job's lease, renewed by its worker's heartbeat;
    # lease expiry, not the visibility timeout, decides that a job was abandoned.
    job_lease_seconds: int = Field(default=30, ge=3)
    # How often the recovery task runs (beat) and how old a queued job must be before recovery
    # may decide that the broker lost its message.
    recovery_interval_seconds: int = Field(default=20, ge=1)
    recovery_grace_seconds: int = Field(default=60, ge=0)
    # A job claimed more than this many times ends failed / poison.
    max_deliveries: int = Field(default=5, ge=1)
    # How long a worker keeps retrying to record an answer it already has (Postgres down).
    settle_retry_seconds: int = Field(default=120, ge=0)
    # How long intake rides out a Postgres outage (backoff retries) before it gives up.
    intake_db_outage_seconds: int = Field(default=600, ge=0)
    # Connections per process; threads wait for one (no overflow).
    db_pool_size: int = Field(default=10, ge=1)
    db_pool_timeout: float = Field(default=60.0, gt=0)

    # Tiers, quotas and limits.
    tier_catalog_path: str | None = None
    quota_period: Literal["calendar", "billing"] = "calendar"
    past_due_grace_days: int = 7
    rate_limit_fail_open: bool = True
    spend_alert_fraction: Decimal = Decimal("0.8")
    alert_webhook_url: str | None = None
    cost_alert_daily_usd: Decimal | None = None
    cost_alert_monthly_usd: Decimal | None = None
    # The daily reconciliation alerts when the drift beyond recorded cost + estimates exceeds this.
    reconcile_drift_alert_usd: Decimal | None = Decimal("1.00")

    # Stripe.
    stripe_secret_key: SecretStr | None = None
    stripe_webhook_secret: SecretStr | None = None
    # Seconds a signature's timestamp may be old. 0 would switch the age check off (replays
    # accepted forever), so it is refused.
    stripe_webhook_tolerance: int = Field(default=300, gt=0)
    stripe_api_base: str | None = None  # a local fake in tests; unset means Stripe itself
    # How a downgrade applied at once (the catalog's billing.downgrade = "immediately") is billed:
    # always_invoice credits the difference at once, create_prorations on the next invoice, none
    # does not prorate. An upgrade is always invoiced at once, so that it is paid before granted.
    stripe_proration_behavior: Literal["always_invoice", "create_prorations", "none"] = "always_invoice"
    stripe_price_basic: str | None = None
    stripe_price_standard: str | None = None
    stripe_price_premium: str | None = None
    stripe_price_professional: str | None = None
    stripe_price_enterprise: str | None = None

    # Operations.
    flower_basic_auth: SecretStr | None = None
    metrics_port: int = DEFAULT_METRICS_PORT
    metrics_host: str = LOCAL_ADDRESS
    flower_address: str = LOCAL_ADDRESS
    # Queues a producer may name in a submission's notify option (comma-separated). A worker
    # publishes the JobResult there, so an open list would let producers feed any queue.
    notify_queues: Annotated[tuple[str, ...], NoDecode] = DEFAULT_NOTIFY_QUEUES
    webhook_port: int = DEFAULT_WEBHOOK_PORT
    # The receiver (and its /health) listens here; Stripe reaches it through a TLS proxy.
    webhook_host: str = LOCAL_ADDRESS
    webhook_max_body_bytes: int = Field(default=256 * 1024, gt=0)
    log_json: bool = True
    log_level: str = "INFO"

    @field_validator("notify_queues", mode="before")
    @classmethod
    def _split_queues(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(q.strip() for q in value.split(",") if q.strip())
        return value

    def weakened_checks(self) -> list[str]:
        """Settings that switch a protection off on purpose; logged as warnings at start."""
        found = []
        if self.rate_limit_fail_open:
            found.append(
                "RATE_LIMIT_FAIL_OPEN=true: while Redis is unreachable, submissions are accepted without a rate limit"
            )
        return found

    @field_validator("database_url", "redis_url", "redis_sentinel_master", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("database_url")
    @classmethod
    def _postgres_only(cls, value: str | None) -> str | None:
        if value is not None and value.split("://", 1)[0] not in POSTGRES_SCHEMES:
            raise ValueError(
                f"must be a postgresql:// URL, not {value.split('://', 1)[0]}:// (only Postgres is supported)"
            )
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_only(cls, value: str | None) -> str | None:
        if value is not None and value.split("://", 1)[0] not in REDIS_SCHEMES:
            raise ValueError(f"must be a redis://, rediss:// or sentinel:// URL, not {value.split('://', 1)[0]}://")
        return value

    @model_validator(mode="after")
    def _sentinel_needs_a_master(self) -> Settings:
        if self.redis_url and self.redis_url.startswith("sentinel://") and not self.redis_sentinel_master:
            raise ValueError("REDIS_URL is a sentinel:// URL: set REDIS_SENTINEL_MASTER to the monitored master's name")
        return self

    @property
    def uses_sentinel(self) -> bool:
        return bool(self.redis_url and self.redis_url.startswith("sentinel://"))

    def stripe_price(self, tier: str) -> str | None:
        """The Stripe price id that buys ``tier``, if one is configured."""
        return getattr(self, f"stripe_price_{tier}", None)

    def require_database_url(self) -> str:
        if not self.database_url:
            raise SettingError(
                "DATABASE_URL is not set: set it to your Postgres, e.g. postgresql://user:password@host:5432/litink"
                " (or use `litink --embedded ...` for a development database under .data/)"
            )
        return self.database_url

    def require_redis_url(self) -> str:
        if not self.redis_url:
            raise SettingError(
                "REDIS_URL is not set: set it to your Redis, e.g. redis://host:6379/0"
                " (or use `litink --embedded ...` for a development Redis under .data/)"
            )
        return self.redis_url


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once."""
    return Settings()
