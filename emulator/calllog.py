"""The call log: what the emulator answered, for tests, /generation and /key.

Benchmarks send hundreds of thousands of calls, so the log keeps only the most
recent ``capacity`` records; the running totals (overall and per key, see spend.py) are
kept apart and stay exact.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from .exactjson import decimal_text
from .spend import SpendBook

__all__ = ["DEFAULT_CAPACITY", "CallLog", "CallRecord"]

DEFAULT_CAPACITY = 100_000


@dataclass
class CallRecord:
    """One chat completion call as the emulator answered it."""

    id: str
    model: str  # the model that served (after any served_as)
    requested_model: str
    status: int
    fault: str | None
    prompt_tokens: int
    completion_tokens: int
    cost: Decimal
    stream: bool
    at: float  # unix seconds when the call arrived
    latency_ms: int
    finish_reason: str | None
    provider: str | None
    referer: str | None = None
    title: str | None = None
    key: str | None = None  # the bearer key that paid for it; never shown by the control API

    @property
    def created_at(self) -> str:
        return datetime.fromtimestamp(self.at, tz=UTC).isoformat()

    def as_json(self) -> dict[str, Any]:
        """The control API's view: cost as a decimal string, time as ISO 8601."""
        return {
            "id": self.id,
            "model": self.model,
            "requested_model": self.requested_model,
            "status": self.status,
            "fault": self.fault,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost": decimal_text(self.cost),
            "stream": self.stream,
            "finish_reason": self.finish_reason,
            "latency_ms": self.latency_ms,
            "referer": self.referer,
            "title": self.title,
            "at": self.created_at,
        }


class CallLog:
    """Bounded record of recent calls plus exact running totals."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._records: OrderedDict[str, CallRecord] = OrderedDict()
        self.spend = SpendBook()
        self.reset()

    def reset(self) -> None:
        self._records.clear()
        self.calls = 0
        self.cost_total = Decimal(0)
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.by_status: Counter[int] = Counter()
        self.spend.reset()

    def add(self, record: CallRecord) -> None:
        self._records[record.id] = record
        while len(self._records) > self.capacity:
            self._records.popitem(last=False)
        self.calls += 1
        self.cost_total += record.cost
        self.prompt_tokens += record.prompt_tokens
        self.completion_tokens += record.completion_tokens
        self.by_status[record.status] += 1
        if record.key is not None:
            self.spend.charge(record.key, record.cost, record.at)

    def get(self, call_id: str) -> CallRecord | None:
        return self._records.get(call_id)

    def recent(self, limit: int | None = None, model: str | None = None) -> list[CallRecord]:
        """Records oldest first, optionally only one model's and only the last ``limit``."""
        records = [r for r in self._records.values() if model is None or model in (r.model, r.requested_model)]
        if limit is not None:
            records = records[-limit:] if limit > 0 else []
        return records

    def stats(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "cost_total": decimal_text(self.cost_total),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "by_status": {str(status): count for status, count in sorted(self.by_status.items())},
            "logged": len(self._records),
            "log_capacity": self.capacity,
        }
