"""The Celery application. All wiring is in celeryconfig.py; tasks live in tasks/."""

from celery import Celery

TASK_MODULES = [
    "tasks.intake",
    "tasks.generation",
    "tasks.status",
    "tasks.billing",
    "tasks.periodic",
]

app = Celery("litink", include=TASK_MODULES)
app.config_from_object("celeryconfig")
