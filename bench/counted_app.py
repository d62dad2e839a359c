"""The Litink worker app, plus client-side counters the benchmark reads: SQL statements
and transactions sent through SQLAlchemy, by kind.

`celery -A bench.counted_app worker ...` runs exactly `workers.app` (same tasks, same
settings, same signal handlers), minus the speed-ups named in BENCH_PIPELINE_WITHOUT; it adds SQLAlchemy event listeners (a dict
increment per statement, well under a microsecond next to a round trip) and a remote
control command, `bench_counters`, that returns the counts so far. No server
configuration is needed (pg_stat_statements is usually not preloaded).
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from typing import Any

from celery.worker.control import inspect_command
from sqlalchemy import event
from sqlalchemy.engine import Engine

from workers.app import app
from workers.ops import json_codec, redis_clients

__all__ = ["app"]

# Same-run A/B of the hot-path speed-ups: BENCH_PIPELINE_WITHOUT=json_codec,redis_clients,no_sent_event
# runs the pipeline with Celery's and kombu's own behaviour instead (bench.throughput variant
# "pipeline-without-json_codec+redis_clients+no_sent_event").
SPEEDUPS = {
    "json_codec": json_codec.uninstall,
    "redis_clients": redis_clients.uninstall,
    "no_sent_event": lambda: app.conf.update(task_send_sent_event=True),
}
for _name in filter(None, os.environ.get("BENCH_PIPELINE_WITHOUT", "").split(",")):
    SPEEDUPS[_name.strip()]()

_lock = threading.Lock()
_counts: Counter[str] = Counter()


def _kind(statement: str) -> str:
    """The statement's first keyword (WITH ... counts as its own kind)."""
    head = statement.lstrip().split(None, 1)
    return head[0].upper() if head else "?"


@event.listens_for(Engine, "before_cursor_execute")
def _count_statement(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
    kind = _kind(statement)
    with _lock:
        _counts["statements"] += 1
        _counts[f"statement:{kind}"] += 1


@event.listens_for(Engine, "commit")
def _count_commit(conn: Any) -> None:
    with _lock:
        _counts["commits"] += 1


@event.listens_for(Engine, "rollback")
def _count_rollback(conn: Any) -> None:
    with _lock:
        _counts["rollbacks"] += 1


@inspect_command()
def bench_counters(state: Any) -> dict[str, int]:
    """Counts since the process started (the benchmark takes differences)."""
    with _lock:
        return dict(_counts)
