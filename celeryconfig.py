"""Celery settings for every Litink process. Values come from config/, read once.

Why each non-default setting is here:
- JSON only: no pickle, and any producer that knows a task name can talk to the workers.
- acks_late + reject_on_worker_lost: a job is never lost to a crash; it can run twice, so
  every task is idempotent (see workers/pipeline/jobs.py).
- prefetch 1: a worker never sits on messages it is not running, or priority would be hidden.
- Postgres is the ledger: a job's lease (JOB_LEASE_SECONDS, heartbeated) decides when it was
  abandoned, and the recovery task re-publishes from Postgres what the broker lost; the
  visibility timeout only redelivers a message whose worker died (docs/architecture.md).
- visibility_timeout: Redis redelivers a message not acked this many seconds after it was
  fetched. It must exceed the longest task (task_time_limit) plus any countdown we schedule
  (capped in workers/llm/model_chain.py), or a healthy task would be delivered twice.
- priority: on Redis 0 is the highest priority. `queue_order_strategy='priority'` with
  explicit `priority_steps` makes a worker consuming several queues BRPOP over
  (priority step x queue), so the message priority decides first. kombu's default `sep`
  is kept, so stock producers interoperate.
- Sentinel: a `sentinel://h1:26379;sentinel://h2:26379` REDIS_URL with REDIS_SENTINEL_MASTER
  puts `master_name` in the broker's and the result backend's transport options; kombu and
  the backend then ask the Sentinels for the current master on every (re)connection.
  With Sentinel, publishing and result writes also retry for ~30 s, since a task may hand a
  job over (`self.replace`) while a failover is under way; kombu's default gives up in ~0.6 s.
"""

from kombu import Queue

from config import get_catalog, get_settings
from config.tiers import BILLING_QUEUE
from tasks.schedule import beat_schedule  # noqa: F401 - read by Celery beat
from workers.ops.result_backend import backend_url

BILLING_TASKS = (
    "litink.create_checkout_session",
    "litink.handle_stripe_event",
    "litink.process_stripe_event",
    "litink.sweep_stripe_events",
    "litink.expire_grace_periods",
)

_settings = get_settings()
_catalog = get_catalog()

broker_url = _settings.require_redis_url()  # a worker without REDIS_URL must not guess a broker
# Celery's Redis backend, except that a late RETRY never overwrites a final state.
result_backend = backend_url(_settings.redis_url, sentinel=_settings.uses_sentinel) if _settings.redis_url else None
broker_connection_retry_on_startup = True

task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
result_accept_content = ["json"]

task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1
task_time_limit = _settings.task_time_limit
result_expires = 7 * 24 * 3600
result_extended = False

task_queues = [Queue(name, routing_key=name) for name in _catalog.queues()]
task_default_queue = "intake"
task_default_priority = 0  # intake and control tasks; tier tasks carry their tier's priority
# Billing has its own queue, so a burst of Stripe webhooks never waits in front of job admission.
# Tier tasks are routed explicitly at hand-over.
task_routes = {
    **{name: {"queue": BILLING_QUEUE} for name in BILLING_TASKS},
    "litink.*": {"queue": "intake"},
}
broker_transport_options = {
    "visibility_timeout": _settings.visibility_timeout,
    "queue_order_strategy": "priority",
    "priority_steps": _catalog.priority_steps(),
    # Sweep for messages whose visibility timeout ran out (a killed worker's) a few times per
    # timeout, scanning on every sweep: kombu's default waits about 100 s between scans.
    "unacked_restore_interval": max(1, min(60, _settings.visibility_timeout // 4)),
    "unacked_restore_throttle": 1,
}
result_backend_transport_options: dict[str, object] = {"retry_policy": {"timeout": 5.0}}
if _settings.uses_sentinel:
    broker_transport_options["master_name"] = _settings.redis_sentinel_master
    result_backend_transport_options["master_name"] = _settings.redis_sentinel_master
    # Ride out a failover (Sentinel's down-after-milliseconds plus the election) instead of
    # failing the publish or the result write: about 30 s of retries, then give up.
    result_backend_transport_options["retry_policy"] = {"timeout": 30.0}
    task_publish_retry_policy = {"max_retries": 30, "interval_start": 0, "interval_step": 0.5, "interval_max": 1.0}
# A result stored while Redis restarts waits for it (backoff up to 10 s, about 2 minutes in
# all) instead of turning a finished job into a FAILURE the producer would receive.
# A result write during a Redis restart or failover waits for the server instead of failing.
result_backend_always_retry = True
result_backend_max_retries = 20
result_backend_base_sleep_between_retries_ms = 100

# Flower needs task events: received, started, succeeded, failed (workers/ops/flower.py).
# No `task-sent`: nothing reads it (Flower shows the states above without it, and stock
# producers never send it), and the hand-over would publish one per job (docs/benchmarks.md).
worker_send_task_events = True
task_send_sent_event = False
# ... published in batches a fraction of a second apart (EVENTS_FLUSH_SECONDS) rather than
# one PUBLISH per event loop turn (workers/ops/event_batching.py).
worker_consumer = "workers.ops.event_batching:Consumer"

timezone = "UTC"
enable_utc = True
worker_hijack_root_logger = False
