"""The beat schedule. Times are UTC. Only one beat process may run (see docs/operations.md)."""

from datetime import timedelta

from celery.schedules import crontab

from config import get_settings

beat_schedule = {
    # Postgres is the ledger: abandoned jobs (expired lease), messages the broker lost and
    # results it dropped are published or stored again from Postgres. Safe to run twice.
    "recover-jobs": {
        "task": "litink.recover_jobs",
        "schedule": timedelta(seconds=get_settings().recovery_interval_seconds),
        "options": {"expires": get_settings().recovery_interval_seconds},
    },
    # Close last month's usage and open the new month's rows. Counters are keyed by period,
    # so this only tidies and reports: correctness never waits for it.
    "reset-monthly-quotas": {
        "task": "litink.reset_monthly_quotas",
        "schedule": crontab(minute=0, hour=0, day_of_month=1),
    },
    # Catch-up: a beat that was down at midnight on the 1st still closes the month.
    "reset-monthly-quotas-catch-up": {
        "task": "litink.reset_monthly_quotas",
        "schedule": crontab(minute=7),
    },
    # OpenRouter's prices change; the catalog price backs up calls without usage.cost.
    "refresh-model-prices": {
        "task": "litink.refresh_model_prices",
        "schedule": crontab(minute=15, hour="*/6"),
    },
    # Daily and monthly spend against the thresholds in settings.
    "cost-alerts": {
        "task": "litink.check_cost_alerts",
        "schedule": crontab(minute="*/10"),
    },
    # OpenRouter reports only running totals per key; a snapshot every 10 minutes turns them
    # into a series, so `litink reconcile` can take the provider's spend over any window as a
    # difference of two snapshots, exact to within one interval at each edge. Minute 0 is in
    # the set, so every UTC day starts with a snapshot at 00:00.
    "snapshot-provider-usage": {
        "task": "litink.snapshot_provider_usage",
        "schedule": crontab(minute="*/10"),
    },
    # Once a day, yesterday's ledger against the provider's figures: an unexplained drift past
    # RECONCILE_DRIFT_ALERT_USD means paid calls the ledger does not hold. It runs at 00:25,
    # after the 00:00 and 00:10 snapshots that close yesterday, and before the 00:30 one.
    "reconcile-costs": {
        "task": "litink.reconcile_costs",
        "schedule": crontab(minute=25, hour=0),
    },
    # Stripe events kept in the inbox but still unprocessed a minute on (a lost message, a worker
    # crash, retries that ran out during an outage) are queued again.
    "sweep-stripe-events": {
        "task": "litink.sweep_stripe_events",
        "schedule": crontab(),
    },
    # Expired response-cache entries are never served, but they stay in the table until purged.
    # Hourly, at a minute no other entry uses; a purge that waited past the next one is dropped.
    "purge-response-cache": {
        "task": "litink.purge_response_cache",
        "schedule": crontab(minute=45),
        "options": {"expires": 3600},
    },
    # A past-due grace period that ran out is a downgrade in subscription_changes when it happens.
    "expire-grace-periods": {
        "task": "litink.expire_grace_periods",
        "schedule": crontab(minute="*/10"),
    },
}
