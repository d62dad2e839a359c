"""The Celery application. All wiring is in celeryconfig.py; tasks live in tasks/."""

import logging
from typing import Any

from celery import Celery, signals

from config import get_settings
from workers.ops import log_setup, metrics_server

TASK_MODULES = [
    "tasks.intake",
    "tasks.generation",
    "tasks.status",
    "tasks.billing",
    "tasks.periodic",
]

# Every task redacts its arguments and its database errors (workers/ops/task_base.py).
app = Celery("litink", include=TASK_MODULES, task_cls="workers.ops.task_base:LitinkTask")
app.config_from_object("celeryconfig")

# Our structured logging replaces Celery's own set-up in worker and beat processes.
signals.setup_logging.connect(log_setup.configure, weak=False)
metrics_server.install(app)


def _warn_weakened_checks(sender: Any = None, **_: Any) -> None:
    """Settings that switch a protection off are allowed, but never silently."""
    for warning in get_settings().weakened_checks():
        logging.getLogger("workers.app").warning("weakened check: %s", warning)


signals.worker_init.connect(_warn_weakened_checks, weak=False, dispatch_uid="litink.weakened_checks")
