"""The thin producer client. It needs nothing but ``celery``: it sends tasks by name.

    client = LitinkClient("redis://localhost:6379/0")
    job_id = client.submit_script("user-42", "Once upon a time...", script_type="narration")
    result = client.result(job_id, timeout=120)   # the JobResult, a dict

Any other Celery app can do the same with ``send_task("litink.submit_script",
kwargs=..., queue="intake")``; the job id is the task id.

Behind Redis Sentinel, pass the Sentinel list and the master name:
``LitinkClient("sentinel://s1:26379;sentinel://s2:26379", transport_options={"master_name": "litink"})``.
"""

from __future__ import annotations

import time
from typing import Any

from celery import Celery

INTAKE_QUEUE = "intake"
RECONNECT_PAUSE = 0.5


class LitinkClient:
    def __init__(
        self, broker_url: str, backend_url: str | None = None, *, transport_options: dict[str, Any] | None = None
    ):
        self.app = Celery("litink-client", broker=broker_url, backend=backend_url or broker_url)
        self.app.conf.update(task_serializer="json", accept_content=["json"], result_serializer="json")
        if transport_options:  # e.g. {"master_name": ...} for sentinel:// URLs
            self.app.conf.update(
                broker_transport_options=dict(transport_options),
                result_backend_transport_options=dict(transport_options),
            )
        errors = self.app.connection_for_read().connection_errors
        self._connection_errors = tuple(e for e in errors if e is not KeyError)

    def _send(self, name: str, kwargs: dict[str, Any], task_id: str | None = None) -> str:
        # The message's kwargsrepr is what the task-sent event and Flower show: never the
        # content. Celery would otherwise put a 1024-character repr of it there.
        return self.app.send_task(
            name, kwargs=kwargs, queue=INTAKE_QUEUE, task_id=task_id, argsrepr="()", kwargsrepr=_summary(kwargs)
        ).id

    def submit_script(
        self,
        user_id: str,
        content: str,
        script_type: str = "cinematic",
        *,
        idempotency_key: str | None = None,
        notify: str | dict | None = None,
        job_id: str | None = None,
    ) -> str:
        """Enqueue a script job; returns its job id."""
        return self._send(
            "litink.submit_script",
            {
                "user_id": user_id,
                "content": content,
                "script_type": script_type,
                "idempotency_key": idempotency_key,
                "notify": notify,
            },
            job_id,
        )

    def submit_analysis(
        self,
        user_id: str,
        content: str,
        analysis_type: str | list[str] = "summary",
        *,
        idempotency_key: str | None = None,
        notify: str | dict | None = None,
        job_id: str | None = None,
    ) -> str:
        """Enqueue an analysis job (a list of types: one batched job); returns its job id."""
        return self._send(
            "litink.submit_analysis",
            {
                "user_id": user_id,
                "content": content,
                "analysis_type": analysis_type,
                "idempotency_key": idempotency_key,
                "notify": notify,
            },
            job_id,
        )

    def intake_consumers(self, timeout: float = 1.0) -> list[str]:
        """The workers consuming ``intake`` that answer within ``timeout`` seconds (a control
        broadcast, like ``celery inspect active_queues``): empty means a submission would wait."""
        replies = self.app.control.inspect(timeout=timeout).active_queues() or {}
        return [name for name, queues in replies.items() if any(q.get("name") == INTAKE_QUEUE for q in queues or [])]

    def result(self, job_id: str, timeout: float | None = None) -> dict[str, Any]:
        """Wait for the job's final JobResult, riding out a Redis restart on the way (the
        workers store the result again from Postgres if Redis lost it)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.1, deadline - time.monotonic())
            try:
                return self.app.AsyncResult(job_id).get(timeout=left)
            except self._connection_errors:
                if deadline is not None and time.monotonic() >= deadline:
                    raise
                time.sleep(RECONNECT_PAUSE)

    def _call(self, name: str, kwargs: dict[str, Any], timeout: float) -> Any:
        return self.app.send_task(name, kwargs=kwargs, queue=INTAKE_QUEUE).get(timeout=timeout)

    def job_status(self, job_id: str, timeout: float = 30) -> dict[str, Any]:
        return self._call("litink.job_status", {"job_id": job_id}, timeout)

    def usage(self, user_id: str, timeout: float = 30) -> dict[str, Any]:
        return self._call("litink.usage", {"user_id": user_id}, timeout)


def _summary(kwargs: dict[str, Any]) -> str:
    """The arguments without the content: its size instead, and whether options are set."""
    shown = {
        name: (f"<{len(value)} chars>" if name == "content" and isinstance(value, str) else value)
        for name, value in kwargs.items()
        if name in ("user_id", "content", "script_type", "analysis_type")
    }
    shown.update({name: "<set>" for name in ("idempotency_key", "notify") if kwargs.get(name) is not None})
    return repr(shown)
