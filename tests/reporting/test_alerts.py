"""Alerts are raised once per kind, subject, period and threshold, and notify only then."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from sqlalchemy import text

from config import Settings
from devtools.embedded import free_port
from workers.reporting.alerts import check_cost_thresholds, raise_alert

NOW = datetime(2025, 3, 15, 12, 0, tzinfo=UTC)


class Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict]]]:
    """A real HTTP endpoint recording every JSON body posted to it."""
    Receiver.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hook", Receiver.received
    server.shutdown()
    server.server_close()


def spend(db, amount: str, when: datetime, attempt: int) -> None:
    db.execute(
        text(
            "INSERT INTO jobs (id, user_id, kind, type, tier, status, content_chars) VALUES"
            " ('job-1', 'u', 'script', 'cinematic', 'basic', 'succeeded', 10) ON CONFLICT DO NOTHING"
        )
    )
    db.execute(
        text(
            "INSERT INTO llm_calls"
            " (job_id, attempt, tier, model, cost_usd, cost_source, status, latency_ms, created_at)"
            " VALUES ('job-1', :a, 'basic', 'deepseek/deepseek-chat', :c, 'provider', 'ok', 100, :at)"
        ),
        {"a": attempt, "c": Decimal(amount), "at": when},
    )


def alerts(db) -> list[tuple]:
    return [
        tuple(r) for r in db.execute(text("SELECT kind, subject, period, threshold, value FROM alerts ORDER BY id"))
    ]


def test_an_alert_is_raised_once_and_notifies_once(db, webhook, caplog):
    url, received = webhook
    settings = Settings(alert_webhook_url=url)
    # Given nothing raised yet
    # When the same alert is raised twice
    with caplog.at_level(logging.WARNING, logger="workers.reporting.alerts"):
        first = raise_alert(
            db,
            "spend_soft_cap",
            "user-1",
            "2025-03",
            Decimal("4.00"),
            Decimal("4.10"),
            "user-1 reached 80% of the spend cap",
            settings=settings,
        )
        second = raise_alert(
            db,
            "spend_soft_cap",
            "user-1",
            "2025-03",
            Decimal("4.00"),
            Decimal("4.20"),
            "user-1 reached 80% of the spend cap",
            settings=settings,
        )
    # Then only the first is new, logged and posted
    assert (first, second) == (True, False)
    assert alerts(db) == [("spend_soft_cap", "user-1", "2025-03", Decimal("4.00"), Decimal("4.10"))]
    assert len([r for r in caplog.records if r.levelno == logging.WARNING and "alert raised" in r.message]) == 1
    assert received == [
        {
            "alert_id": 1,
            "kind": "spend_soft_cap",
            "subject": "user-1",
            "period": "2025-03",
            "threshold": "4.00",
            "value": "4.10",
            "message": "user-1 reached 80% of the spend cap",
        }
    ]


def test_another_threshold_or_period_is_another_alert(db):
    settings = Settings(alert_webhook_url=None)
    # When the same subject crosses a second threshold, and the first one next month
    raised = [
        raise_alert(db, "spend_soft_cap", "user-1", "2025-03", Decimal("4"), Decimal("4"), "m", settings=settings),
        raise_alert(db, "spend_soft_cap", "user-1", "2025-03", Decimal("5"), Decimal("5"), "m", settings=settings),
        raise_alert(db, "spend_soft_cap", "user-1", "2025-04", Decimal("4"), Decimal("4"), "m", settings=settings),
    ]
    # Then each is new
    assert raised == [True, True, True]


def test_a_failing_webhook_is_logged_and_never_raised(db, caplog):
    # Given a webhook nobody listens to
    settings = Settings(alert_webhook_url=f"http://127.0.0.1:{free_port()}/hook")
    # When an alert is raised
    with caplog.at_level(logging.ERROR, logger="workers.reporting.alerts"):
        raised = raise_alert(
            db, "cost_daily", "system", "2025-03-15", Decimal("1"), Decimal("2"), "m", settings=settings
        )
    # Then the alert stands and the failure is an error line
    assert raised is True
    assert any("webhook failed" in r.message for r in caplog.records)
    assert len(alerts(db)) == 1


def test_daily_cost_above_its_threshold_raises_one_daily_alert(db, webhook):
    url, received = webhook
    settings = Settings(
        cost_alert_daily_usd=Decimal("1.00"), cost_alert_monthly_usd=Decimal("5.00"), alert_webhook_url=url
    )
    # Given $1.20 spent today and $2.00 earlier this month (month total $3.20)
    spend(db, "0.70", NOW.replace(hour=1), 1)
    spend(db, "0.50", NOW.replace(hour=11), 2)
    spend(db, "2.00", NOW.replace(day=2), 3)
    # When the check runs twice
    first = check_cost_thresholds(db, NOW, settings=settings)
    second = check_cost_thresholds(db, NOW, settings=settings)
    # Then the daily threshold is reached and raised once; the monthly one is not reached
    assert first == [
        {
            "kind": "cost_daily",
            "subject": "system",
            "period": "2025-03-15",
            "threshold": "1.00",
            "value": "1.20",
            "exceeded": True,
            "raised": True,
        },
        {
            "kind": "cost_monthly",
            "subject": "system",
            "period": "2025-03",
            "threshold": "5.00",
            "value": "3.20",
            "exceeded": False,
            "raised": False,
        },
    ]
    assert [c["raised"] for c in second] == [False, False]
    assert alerts(db) == [("cost_daily", "system", "2025-03-15", Decimal("1.00"), Decimal("1.20"))]
    assert len(received) == 1 and received[0]["kind"] == "cost_daily"


def test_monthly_cost_counts_only_the_calendar_month(db):
    settings = Settings(cost_alert_daily_usd=None, cost_alert_monthly_usd=Decimal("3"))
    # Given $2 at the end of February and $3 in March
    spend(db, "2", datetime(2025, 2, 28, 23, 59, tzinfo=UTC), 1)
    spend(db, "3", datetime(2025, 3, 1, 0, 0, tzinfo=UTC), 2)
    # When March is checked
    checks = check_cost_thresholds(db, NOW, settings=settings)
    # Then only March counts, and reaching the threshold exactly raises
    assert checks == [
        {
            "kind": "cost_monthly",
            "subject": "system",
            "period": "2025-03",
            "threshold": "3",
            "value": "3",
            "exceeded": True,
            "raised": True,
        }
    ]


def test_no_threshold_configured_means_no_check(db):
    spend(db, "100", NOW, 1)
    assert (
        check_cost_thresholds(db, NOW, settings=Settings(cost_alert_daily_usd=None, cost_alert_monthly_usd=None)) == []
    )
    assert alerts(db) == []
