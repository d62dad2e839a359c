"""Flower that can watch but not act: ``python -m workers.ops.flower_guard -A workers.app flower ...``.

Flower's HTTP API lets any login run a task with any arguments (``/api/task/apply``,
``async-apply``, ``send-task``), revoke or abort tasks, change rate limits and time limits,
resize or shut down worker pools, and read any task's stored result (a JobResult holds the
generated content). ``--read_only`` (set by the launcher) disables the operations; this module
also replaces their handlers, and the result reader, with one that answers 403 to every
method, so a Flower version that forgets a ``read_only`` check still refuses them. Then it runs
the ``celery`` command as ``python -m celery`` would.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

from tornado.web import RequestHandler

from workers.ops.internals import FLOWER, Internal

REFUSED = {
    "flower.api.tasks": ("TaskApply", "TaskAsyncApply", "TaskSend", "TaskAbort", "TaskResult"),
    "flower.api.control": (
        "TaskRevoke",
        "TaskTimout",
        "TaskRateLimit",
        "WorkerShutDown",
        "WorkerPoolRestart",
        "WorkerPoolGrow",
        "WorkerPoolShrink",
        "WorkerPoolAutoscale",
        "WorkerQueueAddConsumer",
        "WorkerQueueCancelConsumer",
    ),
}
RELIES_ON = (
    Internal("flower.urls:handlers", FLOWER),
    *(Internal(f"{module}:{name}", FLOWER) for module, names in REFUSED.items() for name in names),
)

REFUSAL = "Refused: this Flower is read-only; tasks are submitted by producers, not through Flower."


class Refused(RequestHandler):
    """Answers 403 to every method."""

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        self.set_status(403)
        self.write({"error": REFUSAL})

    get = post = put = delete = patch = head = options = _refuse

    def check_xsrf_cookie(self) -> None:  # the answer is a refusal whatever the cookie
        return None


def refused_handlers() -> set[type]:
    """Flower's handlers that act on tasks or workers, or read a task's result."""
    return {getattr(importlib.import_module(module), name) for module, names in REFUSED.items() for name in names}


def install() -> int:
    """Swap the refused handlers in Flower's URL table, in place (flower.app reads that very
    list when it builds the application). Returns how many routes were replaced."""
    from flower import urls

    refused = refused_handlers()
    replaced = 0
    for index, route in enumerate(urls.handlers):
        pattern, handler = (route.regex.pattern, route.target) if hasattr(route, "target") else route[:2]
        if handler in refused:
            urls.handlers[index] = (pattern.rstrip("$"), Refused)
            replaced += 1
    return replaced


def main() -> None:
    install()
    from celery import maybe_patch_concurrency

    maybe_patch_concurrency()
    from celery.bin.celery import main as celery_main

    sys.exit(celery_main())


if __name__ == "__main__":
    main()
