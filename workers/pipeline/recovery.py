"""Recovery: re-publish from Postgres what the broker lost. Run by beat (``litink.recover_jobs``)
every ``RECOVERY_INTERVAL_SECONDS``; safe to run twice at once (a transaction-level advisory
lock lets one run at a time; the other returns at once).

What it finds, in order:
(a) ``running`` jobs whose lease expired (their worker died or hung): their ``pending``
    attempts become ``unknown`` at their estimate, the job goes back to ``queued`` and its
    message is published again at the tier's priority. After a Postgres restart every holder
    first gets one full lease to renew (its heartbeat), so a worker that was only cut off is
    not taken for dead.
(b) Redis lost its data (the sentinel key workers write at start is gone): every ``queued``
    and ``running`` job is published again, and the results of recently finished jobs are
    stored again.
(c) the single lost message (popped by a worker that was killed before kombu recorded it in
    ``unacked``; celery/celery#7950): a ``queued`` job published before the oldest message
    still waiting in its tier's queue (every priority sub-queue), older than the grace age and
    not held in ``unacked`` by a live worker, cannot be in the broker: it is published again.
    An ``unacked`` entry counts as held only when it was fetched within the grace age or is a
    countdown not yet due; one fetched long ago for a job still ``queued`` belongs to a worker
    that died between fetch and claim (kombu would return it only after the visibility timeout).
(d) finished jobs whose result is missing from the result backend: stored again from the
    ``jobs`` row, so a waiting ``AsyncResult.get()`` returns.

A message published twice is harmless: the claim lets one delivery run the job; a later one
finds it claimed or finished and does nothing. The statements are named in
db/queries/recovery.sql.
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple, cast

import redis
from celery import Celery, states
from sqlalchemy import Connection

from config import get_catalog, get_settings
from db import named_sql
from db.session import transaction
from workers.pipeline.job_result import job_result
from workers.pipeline.jobs import JobRow
from workers.quotas.periods import utcnow

log = logging.getLogger(__name__)

RECOVERY_LOCK_KEY = 0x6C69746E6B7263  # any constant shared by every recovery run
SENTINEL_KEY = "litink:broker-sentinel"
UNACKED_KEY = "unacked"  # kombu's Redis transport defaults
UNACKED_INDEX_KEY = "unacked_index"
PRIORITY_SEP = "\x06\x16"  # kombu's default sep, also used in its priority sub-queue names
# Finished jobs checked on every run: a few intervals back, so a worker killed between its
# settlement and storing the result is caught, without scanning every recent job each time.
RESULT_CHECK_INTERVALS = 3
RESULT_CHECK_MIN = timedelta(seconds=60)


class Locked(NamedTuple):
    locked: bool


class ExpiredJob(NamedTuple):
    id: str
    tier: str
    lost: int  # pending attempts of every expired job, now unknown


class UnfinishedJob(NamedTuple):
    id: str
    tier: str


class QueuedJob(NamedTuple):
    id: str
    tier: str
    published_at: datetime


SQL = named_sql.load("recovery")
LOCK = SQL.rows("try_recovery_lock", Locked)
REQUEUE_EXPIRED = SQL.rows("requeue_expired_jobs", ExpiredJob)
UNFINISHED = SQL.rows("republish_unfinished_jobs", UnfinishedJob)
QUEUED_BEFORE = SQL.rows("queued_jobs_published_before", QueuedJob)
REPUBLISHED = SQL.statement("mark_jobs_republished")
FINISHED_SINCE = SQL.rows("jobs_finished_since", JobRow)


@dataclass
class Recovered:
    """What one run did, for the task's return value and the log."""

    ran: bool = True
    redis_lost: bool = False
    expired: list[str] = field(default_factory=list)
    lost_attempts: int = 0
    republished: list[str] = field(default_factory=list)
    results_restored: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "ran": self.ran,
            "redis_lost": self.redis_lost,
            "expired": len(self.expired),
            "lost_attempts": self.lost_attempts,
            "republished": len(self.republished),
            "results_restored": len(self.results_restored),
        }


def broker(app: Celery) -> redis.Redis:
    """The broker's Redis. The result backend's client talks to the same server and database
    (both are REDIS_URL), and it follows Sentinel to the current master."""
    client: redis.Redis = app.backend.client
    return client


def mark_broker_alive(client: redis.Redis) -> None:
    """Only recovery writes the sentinel (after a run that found it missing): its absence means
    Redis lost its data since, whatever process reached the emptied Redis first."""
    client.set(SENTINEL_KEY, utcnow().isoformat(), nx=True)


def publish(app: Celery, job_id: str, tier_name: str, queued_at: datetime) -> None:
    """Publish the job's tier message again, from nothing but its id."""
    tier = get_catalog().tier(tier_name)
    app.send_task(
        "litink.run_job",
        kwargs={"job_id": job_id, "queued_at": queued_at.timestamp()},
        task_id=job_id,
        queue=tier.queue,
        priority=tier.priority,
        kwargsrepr=repr({"job_id": job_id, "tier": tier_name, "recovered": True}),
    )


def take_lock(conn: Connection) -> bool:
    """Take the lock that lets one recovery run at a time, until ``conn``'s transaction ends;
    False when another run holds it."""
    return LOCK.one(conn, {"lock_key": RECOVERY_LOCK_KEY}).locked


def recover(app: Celery, now: datetime | None = None) -> Recovered:
    """One recovery run (see the module docstring)."""
    settings = get_settings()
    now = now or utcnow()
    client = broker(app)
    done = Recovered()
    with transaction() as conn:
        if not take_lock(conn):
            return Recovered(ran=False)
        for row in REQUEUE_EXPIRED.all(conn, {"published_at": now, "lease_seconds": settings.job_lease_seconds}):
            done.expired.append(row.id)
            done.lost_attempts = row.lost
            publish(app, row.id, row.tier, now)
        if not client.exists(SENTINEL_KEY):
            done.redis_lost = True
            for unfinished in UNFINISHED.all(conn, {"published_at": now}):
                if unfinished.id not in done.expired:
                    done.republished.append(unfinished.id)
                    publish(app, unfinished.id, unfinished.tier, now)
            since = now - timedelta(seconds=app.conf.result_expires or 86400)
            done.results_restored = _restore_results(app, conn, since)
            mark_broker_alive(client)
        else:
            done.republished = _republish_lost(app, conn, client, now, settings.recovery_grace_seconds)
            window = max(
                RESULT_CHECK_MIN, RESULT_CHECK_INTERVALS * timedelta(seconds=settings.recovery_interval_seconds)
            )
            done.results_restored = _restore_results(app, conn, now - window)
    _log(done)
    return done


def _log(done: Recovered) -> None:
    if done.redis_lost:
        log.error("broker lost its data; unfinished jobs published again from Postgres", extra=done.summary())
    elif done.expired or done.republished or done.results_restored:
        log.warning("recovered abandoned jobs", extra=done.summary())


def _message_queued_at(raw: bytes) -> tuple[str | None, float | None]:
    """(task id, queued_at kwarg) of a kombu Redis message; None where it cannot be read."""
    try:
        message = json.loads(raw)
        task_id = (message.get("headers") or {}).get("id")
        body = message.get("body")
        if (message.get("properties") or {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        payload = json.loads(body)
        kwargs = payload[1] if isinstance(payload, list) and len(payload) > 1 else {}
        queued_at = kwargs.get("queued_at") if isinstance(kwargs, dict) else None
        return task_id, float(queued_at) if queued_at is not None else None
    except (ValueError, TypeError, AttributeError):
        return None, None


def _oldest_waiting(client: redis.Redis, queue: str) -> float | None:
    """queued_at of the oldest message waiting in ``queue`` (the tail of each priority
    sub-queue: kombu LPUSHes and BRPOPs). None when the queue is empty; 0 when the oldest
    message does not say (then no job is judged lost behind it)."""
    steps = get_catalog().priority_steps()
    names = [queue if step == 0 else f"{queue}{PRIORITY_SEP}{step}" for step in steps]
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.lindex(name, -1)
    oldest: float | None = None
    for raw in pipe.execute():
        if raw is None:
            continue
        _, queued_at = _message_queued_at(raw)
        stamp = queued_at if queued_at is not None else 0.0
        oldest = stamp if oldest is None else min(oldest, stamp)
    return oldest


def _held_ids(client: redis.Redis, now: float, grace: float) -> set[str]:
    """Jobs whose message a live worker holds in ``unacked``: fetched within the grace age, or
    a countdown (ETA) message not yet due. A message fetched long ago whose job is still
    ``queued`` was never claimed: its worker died between fetch and claim, and kombu would give
    it back only after the visibility timeout (an hour by default)."""
    # redis-py types zrange's answer loosely; with scores it is (member, score) pairs.
    pairs = cast("list[tuple[bytes | str, float]]", client.zrange(UNACKED_INDEX_KEY, 0, -1, withscores=True))
    fetched_at = {tag.decode() if isinstance(tag, bytes) else tag: score for tag, score in pairs}
    held = set()
    for tag, raw in client.hgetall(UNACKED_KEY).items():
        try:
            message = json.loads(raw)[0]
        except (ValueError, TypeError, IndexError, KeyError):
            continue
        headers = (message.get("headers") or {}) if isinstance(message, dict) else {}
        task_id = headers.get("id")
        if not task_id:
            continue
        tag_text = tag.decode() if isinstance(tag, bytes) else tag
        eta = _timestamp(headers.get("eta"))
        recent = now - fetched_at.get(tag_text, now) < grace
        if recent or (eta is not None and eta > now - grace):
            held.add(task_id)
    return held


def _timestamp(iso: Any) -> float | None:
    if not isinstance(iso, str):
        return None
    try:
        return datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return None


def _republish_lost(app: Celery, conn: Connection, client: redis.Redis, now: datetime, grace: int) -> list[str]:
    """(c): queued jobs the broker cannot hold any more."""
    candidates = QUEUED_BEFORE.all(conn, {"published_before": now - timedelta(seconds=grace)})
    if not candidates:
        return []
    unacked = _held_ids(client, now.timestamp(), grace)
    oldest: dict[str, float | None] = {}
    lost = []
    for job in candidates:
        queue = get_catalog().tier(job.tier).queue
        if queue not in oldest:
            oldest[queue] = _oldest_waiting(client, queue)
        waiting_since = oldest[queue]
        if job.id in unacked:
            continue
        if waiting_since is not None and job.published_at.timestamp() >= waiting_since:
            continue  # its message may still be waiting behind the oldest one
        lost.append(job.id)
        publish(app, job.id, job.tier, now)
    if lost:
        REPUBLISHED.execute(conn, {"job_ids": lost, "published_at": now})
    return lost


def _restore_results(app: Celery, conn: Connection, since: datetime) -> list[str]:
    """(d): store the JobResult of finished jobs whose result the backend no longer holds."""
    rows = FINISHED_SINCE.all(conn, {"finished_since": since})
    if not rows:
        return []
    backend = app.backend
    pipe = backend.client.pipeline(transaction=False)
    for row in rows:
        pipe.exists(backend.get_key_for_task(row.id))
    restored = []
    for row, present in zip(rows, pipe.execute(), strict=True):
        if not present:
            backend.store_result(row.id, job_result(row), states.SUCCESS)
            restored.append(row.id)
    return restored
