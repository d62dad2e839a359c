"""The Celery application. All wiring is in celeryconfig.py; tasks live in tasks/."""

from celery import Celery, signals

from workers.ops import json_codec, kombu_guard, log_setup, metrics_server, redis_clients, startup, startup_checks

TASK_MODULES = [
    "tasks.intake",
    "tasks.generation",
    "tasks.status",
    "tasks.billing",
    "tasks.periodic",
]

# Hot-path speed-ups measured in bench/ (docs/benchmarks.md): orjson under kombu's json name
# and content type, and one redis-py client per kombu channel.
json_codec.install()
redis_clients.install()

# Every task redacts its arguments and its database errors (workers/ops/task_base.py).
app = Celery("litink", include=TASK_MODULES, task_cls="workers.ops.task_base:LitinkTask")
app.config_from_object("celeryconfig")

# Our structured logging replaces Celery's own set-up in worker and beat processes.
signals.setup_logging.connect(log_setup.configure, weak=False)
metrics_server.install(app)
# A worker refuses to start when it could only fail its jobs (e.g. OpenRouter without a key).
signals.worker_init.connect(startup.refuse_misconfigured_worker, weak=False)
# Settings that switch a protection off are allowed, but never silently.
signals.worker_init.connect(startup.warn_weakened_checks, weak=False, dispatch_uid="litink.weakened_checks")
startup_checks.install()
kombu_guard.install()
