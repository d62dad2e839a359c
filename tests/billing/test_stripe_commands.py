"""`litink stripe events` lists the inbox; `litink stripe replay` reprocesses one event after a fix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
from sqlalchemy import Connection, text

from .conftest import WEBHOOK_SECRET, Events, sign
from .processes import ROOT


def litink(*args: str, expect: int = 0, env: dict[str, str] | None = None) -> Any:
    """The `litink` command, as an operator runs it, against the test services."""
    out = subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ | (env or {}),
    )
    assert out.returncode == expect, out.stderr + out.stdout
    return json.loads(out.stdout) if "--json" in args else out.stdout


def test_an_operator_lists_the_inbox_by_state_and_replays_a_failed_event_after_the_fix(
    events: Events, db: Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given one event ignored, and one failed because STRIPE_SECRET_KEY was missing when it came
    from config import get_settings
    from workers.billing import handle_event

    ignored = events.event("customer.created", {"id": "cus_1", "object": "customer"})
    assert handle_event(ignored, sign(ignored)).outcome == "ignored"
    monkeypatch.delenv("STRIPE_SECRET_KEY")
    get_settings.cache_clear()
    failing = events.checkout_completed("user-ops", "premium", subscription="sub_ops")
    failed_id = json.loads(failing)["id"]
    assert handle_event(failing, sign(failing)).outcome.startswith("failed: BillingNotConfigured")

    # When the operator lists the failed events, and the whole inbox as a table
    failed = litink("stripe", "events", "--state", "failed", "--json")
    shown = litink("stripe", "events")

    # Then they see each event's state, and why the failed one failed
    assert [(e["event_id"], e["state"], e["error"]) for e in failed] == [
        (failed_id, "failed", "BillingNotConfigured: STRIPE_SECRET_KEY is not set")
    ]
    assert failed_id in shown and "failed" in shown and "ignored" in shown

    # When they set the key and replay it
    fixed = {"STRIPE_SECRET_KEY": "sk_test_litink", "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET}
    replayed = litink("stripe", "replay", failed_id, "--json", env=fixed)

    # Then it is applied
    assert replayed == {"event_id": failed_id, "type": "checkout.session.completed", "outcome": "provisioned"}
    assert db.execute(text("SELECT state FROM stripe_events WHERE id = :id"), {"id": failed_id}).scalar() == "applied"
    assert db.execute(text("SELECT tier FROM subscriptions WHERE user_id = 'user-ops'")).scalar() == "premium"
