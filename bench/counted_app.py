"""The Litink worker app, plus client-side counters the benchmark reads: SQL statements
and transactions sent through SQLAlchemy, by kind; redis-py client objects built; JSON
encodes and decodes.

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

import redis
from celery.worker.control import inspect_command
from kombu.serialization import registry
from kombu.transport import redis as kombu_redis
from sqlalchemy import event
from sqlalchemy.engine import Engine

from config import get_settings
from db import session
from tasks import generation
from workers.app import app
from workers.ops import json_codec, redis_clients
from workers.pipeline import attempts, settlement
from workers.pipeline import heartbeat as heartbeat_module

__all__ = ["app"]

# Same-run A/B of the hot-path speed-ups: BENCH_PIPELINE_WITHOUT=json_codec,redis_clients,no_sent_event
# runs the pipeline with Celery's and kombu's own behaviour instead (bench.throughput variant
# "pipeline-without-json_codec+redis_clients+no_sent_event").


def _without_health_view() -> None:
    os.environ["MODEL_HEALTH_VIEW_SECONDS"] = "0"  # read when the health board is first built
    get_settings.cache_clear()


def _without_autocommit() -> None:
    for module in (generation, settlement, attempts, heartbeat_module):  # each imported the name
        module.autocommit = session.transaction  # type: ignore[attr-defined]


SPEEDUPS = {
    "json_codec": json_codec.uninstall,
    "redis_clients": redis_clients.uninstall,
    "no_sent_event": lambda: app.conf.update(task_send_sent_event=True),
    # speed-ups that replaced code rather than adding a switch are compared across commits instead
    "event_batches": lambda: app.conf.update(worker_consumer="celery.worker.consumer:Consumer"),
    "health_view": _without_health_view,
    "autocommit": _without_autocommit,
    "keepalive": lambda: os.environ.update(OPENROUTER_KEEPALIVE_CONNECTIONS="100") or get_settings.cache_clear(),
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


def _count(key: str, n: int = 1) -> None:
    with _lock:
        _counts[key] += n


# What the speed-ups act on, counted per job: redis-py client objects built (kombu builds one
# per command unless workers/ops/redis_clients.py is installed) and JSON encodes/decodes
# (message bodies, results, events, the Redis transport's envelope).
_redis_init = redis.Redis.__init__


def _counting_redis_init(self: Any, *args: Any, **kwargs: Any) -> None:
    _count("redis_clients_built")
    _redis_init(self, *args, **kwargs)


redis.Redis.__init__ = _counting_redis_init  # type: ignore[method-assign]


def _counting(key: str, fn: Any) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _count(key)
        return fn(*args, **kwargs)

    return wrapper


_codec = registry._encoders["json"]
registry.register(
    "json",
    _counting("json_encodes", _codec.encoder),
    _counting("json_decodes", registry._decoders[_codec.content_type]),
    content_type=_codec.content_type,
    content_encoding=_codec.content_encoding,
)
kombu_redis.dumps = _counting("json_encodes", kombu_redis.dumps)
kombu_redis.loads = _counting("json_decodes", kombu_redis.loads)


@inspect_command()
def bench_counters(state: Any) -> dict[str, int]:
    """Counts since the process started (the benchmark takes differences)."""
    with _lock:
        return dict(_counts)
