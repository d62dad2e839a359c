"""The baseline: a bare Celery app with the same broker settings as the Litink workers
(JSON, acks_late, prefetch 1, the same Redis) and two tasks, nothing else.

- ``bench.noop``: returns at once. The floor: what one Celery message costs.
- ``bench.sdk_chat``: one chat completion with the openai SDK, one ``openai.OpenAI``
  client per process (``max_retries=0``), base URL = the emulator. No intake, no
  database, no limits: what "Celery plus an LLM call" costs, the baseline the pipeline
  is compared with.

Run as ``celery -A bench.baseline_app worker -P threads -c 200 -Q bench.baseline``. Reads
``REDIS_URL``, ``OPENROUTER_BASE_URL`` and ``OPENROUTER_API_KEY`` from the environment
(it does not import the project's settings, on purpose).
"""

from __future__ import annotations

import os
import threading

import openai  # imported at start-up, as the Litink workers do
from celery import Celery

QUEUE = "bench.baseline"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/2"

redis_url = os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
app = Celery("bench-baseline", broker=redis_url, backend=redis_url)
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_accept_content=["json"],
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    task_default_queue=QUEUE,
    broker_connection_retry_on_startup=True,
    result_expires=3600,
)

_client = None
_client_lock = threading.Lock()


def _openai():
    """One client per process: its HTTP connection pool is shared by every thread."""
    global _client
    if _client is None:
        with _client_lock:
            if _client is None:
                _client = openai.OpenAI(
                    api_key=os.environ.get("OPENROUTER_API_KEY") or "sk-or-bench",
                    base_url=os.environ["OPENROUTER_BASE_URL"],
                    max_retries=0,
                    timeout=60.0,
                )
    return _client


@app.task(name="bench.noop")
def noop(n=None):
    return n


@app.task(name="bench.sdk_chat")
def sdk_chat(model, messages, max_tokens, temperature):
    response = _openai().chat.completions.create(
        model=model, messages=messages, max_tokens=max_tokens, temperature=temperature
    )
    usage = response.usage
    return {
        "content": response.choices[0].message.content,
        "model": response.model,
        "prompt_tokens": usage.prompt_tokens if usage else 0,
        "completion_tokens": usage.completion_tokens if usage else 0,
    }
