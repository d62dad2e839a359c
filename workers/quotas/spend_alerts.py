"""The soft spend alert: once per user and period, when spend crosses a fraction of the cap."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from config import get_settings
from config.tiers import Tier
from db.session import transaction
from workers.reporting.alerts import raise_alert


def check(user_id: str, tier: Tier, period_start: date, spend: Decimal) -> bool:
    """Raise the alert if ``spend`` is at or past the soft threshold. True when newly raised.

    Runs after the settlement has committed, so a slow alert webhook never holds it open,
    and touches the database only past the threshold."""
    if tier.spend_cap_usd is None:
        return False
    threshold = tier.spend_cap_usd * get_settings().spend_alert_fraction
    if spend < threshold:
        return False
    with transaction() as conn:
        return raise_alert(
            conn,
            "spend_soft_cap",
            user_id,
            period_start.isoformat(),
            threshold,
            spend,
            f"user {user_id} has spent {spend} USD of the {tier.name} tier's {tier.spend_cap_usd} USD monthly cap",
        )
