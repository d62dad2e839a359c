"""Structured logs: one JSON object a line, carrying task_id, job_id, user_id, tier and model.

Secrets never reach a log line: settings hold them as SecretStr, tasks never take them as
arguments, and this formatter masks anything shaped like a key that slips into a message.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

from celery import current_task

from config import get_settings

CONTEXT_FIELDS = ("job_id", "user_id", "tier", "model", "reason", "error", "status", "countdown")
SECRET_SHAPES = re.compile(r"(sk-or-[A-Za-z0-9-]{4})[A-Za-z0-9-]+|(sk_(?:live|test)_)[A-Za-z0-9]+|(whsec_)[A-Za-z0-9]+")


def mask(text: str) -> str:
    return SECRET_SHAPES.sub(lambda m: (m.group(1) or m.group(2) or m.group(3)) + "****", text)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": mask(record.getMessage()),
        }
        task = current_task
        if task and task.request and task.request.id:
            entry["task_id"] = task.request.id
            entry["task"] = task.name
        for field in CONTEXT_FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                entry[field] = value
        if record.exc_info:
            entry["exc"] = mask(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


class PlainFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        context = " ".join(f"{f}={getattr(record, f)}" for f in CONTEXT_FIELDS if getattr(record, f, None) is not None)
        return mask(super().format(record) + (f" [{context}]" if context else ""))


def configure(**_: object) -> None:
    """Install the formatter on the root logger (connected to Celery's setup_logging)."""
    settings = get_settings()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if settings.log_json else PlainFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    # One line per HTTP request, and Celery's per-task "received"/"succeeded" lines (which
    # would also copy generated content into the logs), are noise at INFO: Flower and the
    # metrics show them, and the runner logs what matters about calls.
    for chatty in ("httpx2", "httpx", "httpcore2", "httpcore", "celery.app.trace", "celery.worker.strategy"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
