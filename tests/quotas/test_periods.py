"""Quota periods are real calendar months in UTC: 28, 29, 30 or 31 days."""

from datetime import UTC, date, datetime

import pytest
from freezegun import freeze_time
from sqlalchemy import text

from workers.pipeline.admission import admit
from workers.pipeline.validation import JobRequest
from workers.quotas.periods import calendar_month, utcnow


@pytest.mark.parametrize(
    ("instant", "start", "end"),
    [
        ("2027-01-31T23:59:59", date(2027, 1, 1), date(2027, 2, 1)),
        ("2027-02-28T12:00:00", date(2027, 2, 1), date(2027, 3, 1)),
        ("2028-02-29T23:59:59", date(2028, 2, 1), date(2028, 3, 1)),
        ("2027-04-30T00:00:00", date(2027, 4, 1), date(2027, 5, 1)),
        ("2027-12-31T23:59:59", date(2027, 12, 1), date(2028, 1, 1)),
    ],
)
@pytest.mark.unit
def test_the_calendar_month_has_its_real_length(instant, start, end):
    assert calendar_month(datetime.fromisoformat(instant).replace(tzinfo=UTC)) == (start, end)


@pytest.mark.unit
def test_a_time_in_another_zone_counts_in_its_utc_month():
    # 23:30 on Jan 31 in UTC-5 is already February in UTC
    at = datetime.fromisoformat("2027-01-31T23:30:00-05:00")
    assert calendar_month(at)[0] == date(2027, 2, 1)


def submit(user: str, n: int = 1) -> list[str]:
    import uuid

    out = []
    for _ in range(n):
        admission = admit(JobRequest(str(uuid.uuid4()), "script", "cinematic", user, "Text."))
        out.append("accepted" if admission.tier else admission.result["reason"])
    return out


def test_the_allowance_renews_at_midnight_utc_on_the_first_of_a_leap_march(db):
    # Given a free user who used both units in February of a leap year
    with freeze_time("2028-02-29T23:59:58Z"):
        assert submit("leap", 3) == ["accepted", "accepted", "quota_exceeded"]
    # When the clock passes midnight UTC into March
    with freeze_time("2028-03-01T00:00:01Z"):
        assert utcnow().month == 3
        # Then a fresh allowance is there, with no reset having run
        assert submit("leap") == ["accepted"]
    periods = db.execute(text("SELECT period_start, period_end, scripts_used FROM quota_usage ORDER BY 1")).all()
    assert [tuple(p) for p in periods] == [
        (date(2028, 2, 1), date(2028, 3, 1), 2),
        (date(2028, 3, 1), date(2028, 4, 1), 1),
    ]
