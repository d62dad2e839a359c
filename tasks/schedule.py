"""The beat schedule. Times are UTC. Only one beat process may run (see docs/operations.md)."""

from celery.schedules import crontab

beat_schedule = {
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
    # Stripe events kept in the inbox but still unprocessed a minute on (a lost message, a worker
    # crash, retries that ran out during an outage) are queued again.
    "sweep-stripe-events": {
        "task": "litink.sweep_stripe_events",
        "schedule": crontab(),
    },
    # A past-due grace period that ran out is a downgrade in subscription_changes when it happens.
    "expire-grace-periods": {
        "task": "litink.expire_grace_periods",
        "schedule": crontab(minute="*/10"),
    },
}
