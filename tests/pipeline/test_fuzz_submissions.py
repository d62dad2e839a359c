"""Property: whatever a producer sends to the submit tasks, by name, with a stock Celery app,
it gets a JobResult under its task id; no jobs row is left unfinished; the worker stays up.

Hypothesis generates batches of submissions of every shape: valid ones, one field broken,
wrong types, NUL bytes, unpaired surrogates, oversized strings, unknown, missing and
positional arguments, odd task ids. Each batch is sent at once and then awaited, through a
real worker process and the emulator. The default run sends a few hundred; the slow run
(``pytest -m slow``) thousands.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from celery import Celery
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from config import get_settings
from tests.waiting import wait_until

FINAL = {"succeeded", "failed", "rejected"}
NAMES = ["user_id", "content", "script_type", "analysis_type", "idempotency_key", "notify"]

# Ordinary text, and text drawn from control characters (NUL) and unpaired surrogates.
texts = st.text(max_size=80) | st.text(alphabet=st.characters(categories=["Cs", "Cc", "Zs", "Lu", "So"]), max_size=20)
oversized = st.sampled_from([20_001, 70_000, 400_001, 600_000]).map(lambda n: "w " * (n // 2))
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | texts
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
user_ids = st.sampled_from(["fuzz-1", "fuzz-2", "fuzz.3@x", "u1\n", "", "x" * 65, "bad id"]) | values
contents = st.sampled_from(["A short story.", "   ", "a\x00b", "half \ud800", "Ünïcødé ✓ text"]) | oversized | values
types_ = st.sampled_from(["cinematic", "narration", "summary", "keywords", "opera", ""]) | values
keys = st.none() | st.sampled_from(["k-1", "k-2", "k\x00", "k" * 129]) | values
notifies = (
    st.none()
    | st.sampled_from(
        [
            "producer.done",
            {"task": "producer.done", "queue": "celery"},
            {"task": "litink.run_job", "queue": "intake"},
            {"task": "t" * 199},
            {"task": "producer.done", "queue": "tier.enterprise"},
        ]
    )
    | values
)
field_strategies = {
    "user_id": user_ids,
    "content": contents,
    "script_type": types_,
    "analysis_type": types_,
    "idempotency_key": keys,
    "notify": notifies,
}
task_ids = (
    st.none()
    | st.sampled_from(["x" * 65, "has\x00nul", "spaces in id", "ümlaut", "0", "job-a"])
    | st.text(alphabet=st.characters(exclude_categories=("Cs",)), min_size=1, max_size=70)
)


@st.composite
def submissions(draw: Any) -> tuple[str, list[Any], dict[str, Any], str]:
    name = draw(st.sampled_from(["litink.submit_script", "litink.submit_analysis"]))
    kwargs: dict[str, Any] = {}
    if draw(st.integers(0, 3)):  # mostly a valid base (reused keys and ids make conflicts), then mutated
        kwargs = {
            "user_id": draw(st.sampled_from(["fuzz-1", "fuzz-2", "fuzz-3"])),
            "content": draw(st.sampled_from(["A short story.", "Another story.", "A third."])),
        }
        if draw(st.booleans()):
            kwargs["idempotency_key"] = draw(st.sampled_from(["k-1", "k-2"]))
    for field in draw(st.lists(st.sampled_from(NAMES), max_size=2, unique=True)):
        kwargs[field] = draw(field_strategies[field])
    if draw(st.integers(0, 5)) == 0:
        kwargs.pop(draw(st.sampled_from(["user_id", "content"])), None)
    if draw(st.integers(0, 4)) == 0:
        kwargs.update(draw(st.dictionaries(st.text(min_size=1, max_size=12), values, min_size=1, max_size=2)))
    args = draw(st.lists(values, max_size=2)) if draw(st.integers(0, 9)) == 0 else []
    task_id = draw(task_ids) if draw(st.integers(0, 4)) == 0 else None  # mostly the producer's own uuid
    # Unpaired surrogates cannot name a Redis key (UTF-8): no producer could read that answer.
    return name, args, kwargs, task_id if task_id else str(uuid.uuid4())


def fuzz(spawn_worker: Any, db: Any, examples: int, batch: int) -> dict[str, int]:
    process = spawn_worker(concurrency=8)
    redis_url = get_settings().redis_url
    producer = Celery("stock-producer", broker=redis_url, backend=redis_url)
    outcomes: dict[str, int] = {}
    sent = 0
    # Task ids that were ever sent with an idempotency key. Hypothesis repeats ids across
    # examples, and the result stored under an id is kept (Celery never replaces a SUCCESS), so
    # a later submission under such an id may still read the original job's answer.
    keyed: dict[str, bool] = {}

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        derandomize=False,
    )
    @given(st.lists(submissions(), min_size=1, max_size=batch))
    def run(messages: list[tuple[str, list[Any], dict[str, Any], str]]) -> None:
        nonlocal sent
        pending = []
        for name, args, kwargs, task_id in messages:
            pending.append(producer.send_task(name, args=args, kwargs=kwargs, queue="intake", task_id=task_id))
            keyed[task_id] = keyed.get(task_id, False) or isinstance(kwargs.get("idempotency_key"), str)
        sent += len(pending)
        for job in pending:
            try:
                result = job.get(timeout=60)
            except Exception as exc:  # only a system fault may raise, and none is injected here
                pytest.fail(f"{job.id!r} raised {type(exc).__name__}: {str(exc)[:300]}")
            assert isinstance(result, dict) and result["status"] in FINAL, result
            if result["job_id"] != job.id:  # only a reused idempotency key answers with another job
                assert keyed.get(job.id) and result["status"] in FINAL, result
            if result["status"] == "rejected":
                assert result["reason"] and result["detail"], result
            key = f"{result['status']}/{result['reason']}"
            outcomes[key] = outcomes.get(key, 0) + 1
        assert process.poll() is None, "the worker died"

    started = time.monotonic()
    run()
    elapsed = time.monotonic() - started
    # No row left unfinished, and the worker still answers
    unfinished = text("SELECT count(*) FROM jobs WHERE status NOT IN ('succeeded', 'failed', 'rejected')")
    wait_until(lambda: db.execute(unfinished).scalar() == 0, timeout=10, what="every jobs row final")
    assert process.poll() is None and producer.control.ping(timeout=2)
    print(f"\nfuzz: {sent} submissions in {elapsed:.1f} s; outcomes {dict(sorted(outcomes.items()))}")
    return outcomes


# The stock producer's redis-py connections may be closed by the garbage collector mid-test;
# pytest reports that as an unraisable exception, which is not the system under test.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_every_submission_of_any_shape_gets_a_job_result_and_the_worker_survives(spawn_worker, db):
    outcomes = fuzz(spawn_worker, db, examples=80, batch=12)
    assert outcomes.get("rejected/invalid_input", 0) > 0 and outcomes.get("succeeded/None", 0) > 0


@pytest.mark.slow
def test_thousands_of_submissions_of_any_shape_get_a_job_result(spawn_worker, db):
    fuzz(spawn_worker, db, examples=500, batch=12)
