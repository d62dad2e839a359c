"""Fixtures shared by the pipeline tests."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from celery.signals import task_postrun


class FinishedRuns:
    """Counts the finished executions of each task id (and of each task name under it), as the
    in-process worker's ``task_postrun`` reports them. A task has published everything it
    publishes (its result, its notifications) before its run counts here, so waiting for a run
    is how a test knows that nothing more will come of it."""

    def __init__(self) -> None:
        self._runs: Counter[tuple[str | None, str | None]] = Counter()
        self._cond = threading.Condition()

    def record(self, sender=None, task_id=None, **_) -> None:
        with self._cond:
            self._runs[(task_id, getattr(sender, "name", None))] += 1
            self._cond.notify_all()

    def count(self, task_id: str, task: str | None = None) -> int:
        with self._cond:
            return self._count_locked(task_id, task)

    def by_task_id(self) -> Counter[str | None]:
        with self._cond:
            counts: Counter[str | None] = Counter()
            for (tid, _), n in self._runs.items():
                counts[tid] += n
            return counts

    def __call__(self, task_id: str, count: int, timeout: float = 30, *, task: str | None = None) -> None:
        """Wait until ``task_id`` (only runs of ``task``, when given) has finished ``count`` times."""
        with self._cond:
            done = self._cond.wait_for(lambda: self._count_locked(task_id, task) >= count, timeout)
            finished = self._count_locked(task_id, task)
            assert done, f"{task_id} ({task or 'any task'}) finished {finished} of {count} times"

    def _count_locked(self, task_id: str, task: str | None) -> int:
        return sum(n for (tid, name), n in self._runs.items() if tid == task_id and task in (None, name))


@pytest.fixture
def finished_runs():
    """Counts finished executions of each task id; call it to wait for them."""
    runs = FinishedRuns()
    task_postrun.connect(runs.record, weak=False)
    yield runs
    task_postrun.disconnect(runs.record)
