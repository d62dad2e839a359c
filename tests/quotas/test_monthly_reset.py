"""The monthly roll-over is idempotent, and the beat schedule fires when it should."""

from datetime import UTC, datetime

import pytest
from celery.schedules import crontab
from sqlalchemy import text

from tasks.schedule import beat_schedule
from workers.quotas.monthly_reset import roll


def test_rolling_twice_or_a_day_late_changes_nothing_more(db, subscribe):
    # Given January usage for two users, one of them subscribed
    subscribe("sub-user", "basic")
    db.execute(
        text(
            "INSERT INTO quota_usage (user_id, period_start, period_end, scripts_used, spend_usd) VALUES"
            " ('sub-user', '2027-01-01', '2027-02-01', 4, 0.25), ('free-user', '2027-01-01', '2027-02-01', 2, 0.01)"
        )
    )
    # When the reset runs at midnight on Feb 1, again a minute later, and again a day late
    first = roll(db, datetime(2027, 2, 1, 0, 0, tzinfo=UTC))
    second = roll(db, datetime(2027, 2, 1, 0, 1, tzinfo=UTC))
    late = roll(db, datetime(2027, 2, 2, 0, 0, tzinfo=UTC))
    # Then January was closed once, February opened once for the subscriber
    assert (first["closed"], first["opened"]) == (2, 1)
    assert (second["closed"], second["opened"]) == (0, 0)
    assert (late["closed"], late["opened"]) == (0, 0)
    summaries = db.execute(text("SELECT user_id, scripts_used, spend_usd FROM quota_period_summaries ORDER BY 1")).all()
    assert [(s.user_id, s.scripts_used, str(s.spend_usd)) for s in summaries] == [
        ("free-user", 2, "0.01"),
        ("sub-user", 4, "0.25"),
    ]


@pytest.mark.unit
def test_the_monthly_reset_fires_at_midnight_utc_on_the_first_only():
    schedule = beat_schedule["reset-monthly-quotas"]["schedule"]
    assert isinstance(schedule, crontab)
    assert schedule.minute == {0} and schedule.hour == {0} and schedule.day_of_month == {1}
    assert schedule.month_of_year == set(range(1, 13))
    # An hourly catch-up covers a beat that was down at midnight
    catch_up = beat_schedule["reset-monthly-quotas-catch-up"]["schedule"]
    assert catch_up.minute == {7} and len(catch_up.hour) == 24


@pytest.mark.unit
def test_every_scheduled_task_is_registered():
    from workers.app import app

    app.loader.import_default_modules()
    for entry in beat_schedule.values():
        assert entry["task"] in app.tasks
