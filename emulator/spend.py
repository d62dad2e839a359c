"""What each key has spent, the way OpenRouter's ``GET /key`` reports it.

OpenRouter keeps, per key, the cumulative ``usage`` and the spend of the current UTC day,
week (from Monday) and month. The emulator keeps the same figures, exact in Decimal, charged
at the moment it decides to answer a call, so a call the client abandoned (a hang, a read
timeout, a killed worker) is counted like any other: that is what lets the workers'
reconciliation find the drift between the provider's figures and the ledger.

Buckets are keyed by the UTC period's first day, so a figure for "today" is a lookup and old
periods cost a few bytes each.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

__all__ = ["KeyFigures", "SpendBook", "period_starts"]


@dataclass(frozen=True)
class KeyFigures:
    """One key's spend: all time, and in the UTC day, week and month of ``at``."""

    usage: Decimal
    usage_daily: Decimal
    usage_weekly: Decimal
    usage_monthly: Decimal


def period_starts(at: float) -> tuple[date, date, date]:
    """The first UTC day of the day, week (Monday) and month that contain unix time ``at``."""
    day = datetime.fromtimestamp(at, tz=UTC).date()
    return day, day - timedelta(days=day.weekday()), day.replace(day=1)


class _KeySpend:
    def __init__(self) -> None:
        self.total = Decimal(0)
        self.daily: defaultdict[date, Decimal] = defaultdict(Decimal)
        self.weekly: defaultdict[date, Decimal] = defaultdict(Decimal)
        self.monthly: defaultdict[date, Decimal] = defaultdict(Decimal)


class SpendBook:
    """Per-key running spend. Used from the event loop thread only, so it needs no lock."""

    def __init__(self) -> None:
        self._keys: dict[str, _KeySpend] = {}

    def reset(self) -> None:
        self._keys.clear()

    def charge(self, key: str, cost: Decimal, at: float) -> None:
        """Add ``cost`` to ``key``'s figures, in the periods that contain ``at``."""
        spend = self._keys.setdefault(key, _KeySpend())
        day, week, month = period_starts(at)
        spend.total += cost
        spend.daily[day] += cost
        spend.weekly[week] += cost
        spend.monthly[month] += cost

    def figures(self, key: str, now: float) -> KeyFigures:
        """``key``'s figures as seen at unix time ``now``: zeros for a key that never spent."""
        spend = self._keys.get(key)
        if spend is None:
            return KeyFigures(Decimal(0), Decimal(0), Decimal(0), Decimal(0))
        day, week, month = period_starts(now)
        return KeyFigures(
            usage=spend.total,
            usage_daily=spend.daily.get(day, Decimal(0)),
            usage_weekly=spend.weekly.get(week, Decimal(0)),
            usage_monthly=spend.monthly.get(month, Decimal(0)),
        )

    def account_total(self) -> Decimal:
        """Every key's usage together: the account's ``total_usage`` on ``/credits``."""
        return sum((spend.total for spend in self._keys.values()), Decimal(0))
