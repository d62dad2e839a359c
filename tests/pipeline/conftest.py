"""Fixtures shared by the pipeline tests."""

from __future__ import annotations

import threading

import pytest
from celery.signals import task_postrun


@pytest.fixture
def finished_runs():
    """Counts finished executions of each task id."""
    runs, cond = {}, threading.Condition()

    def record(task_id=None, **_):
        with cond:
            runs[task_id] = runs.get(task_id, 0) + 1
            cond.notify_all()

    task_postrun.connect(record, weak=False)

    def wait(task_id, count, timeout=30):
        with cond:
            assert cond.wait_for(lambda: runs.get(task_id, 0) >= count, timeout), runs

    yield wait
    task_postrun.disconnect(record)
