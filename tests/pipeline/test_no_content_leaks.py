"""No user or generated content outside the ledger: a unique marker submitted as content is
found in the JobResults (result backend, notify messages) and nowhere else: not in task
events (a Celery event receiver), not in Flower's persisted state (flower.db) or its log, not
in the worker's log records, not in any other Redis key. Jobs run through success, a provider
failure, a deferred retry (a Celery retry with countdown), an invalid-input rejection, a stock
producer's message (whose kwargsrepr carries the content) and notify."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery

from config import get_settings
from devtools.embedded import free_port
from tests.ops.test_flower import CREDENTIALS, get
from tests.pipeline.notifications import QUEUE, wait_for
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
FREE_PRIMARY = "meta-llama/llama-3.2-3b-instruct"
LAST_EVENTS = frozenset({"task-succeeded", "task-failed", "task-retried", "task-rejected", "task-revoked"})


class EventCapture:
    """Every event the workers send, as Flower would receive them."""

    def __init__(self, app: Celery, finished_runs: Any) -> None:
        self.events: list[dict[str, Any]] = []
        self._app = app
        self._finished_runs = finished_runs
        self._ready = threading.Event()
        self._receiver: Any = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with self._app.connection_for_read() as conn:
            self._receiver = self._app.events.Receiver(conn, handlers={"*": self.events.append})
            self._ready.set()
            self._receiver.capture(limit=None, timeout=None, wakeup=False)

    def __enter__(self) -> EventCapture:
        self._thread.start()
        assert self._ready.wait(10)
        # Events published before the receiver's binding exists are lost: probe until one is seen.
        probe = f"probe-{uuid.uuid4().hex}"
        with self._app.events.default_dispatcher() as dispatcher:

            def probe_seen() -> bool:
                dispatcher.send("test-probe", probe=probe)
                return any(e.get("probe") == probe for e in self.events)

            wait_until(probe_seen, timeout=10, interval=0.2, what="the event receiver's binding")
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            # Each run's last event (succeeded, failed or retried) is sent after its postrun and
            # after anything the run published, so once every run's last event is here, so is
            # every event of these jobs.
            wait_until(self._every_run_reported, timeout=15, what="the last event of every task run")
        self._receiver.should_stop = True
        self._thread.join(10)

    def _every_run_reported(self) -> bool:
        last: dict[str, int] = {}
        for event in list(self.events):
            if event["type"] in LAST_EVENTS:
                last[event["uuid"]] = last.get(event["uuid"], 0) + 1
        runs = self._finished_runs.by_task_id()
        return bool(runs) and all(last.get(task_id, 0) >= n for task_id, n in runs.items())


class FlowerState:
    """A running Flower and the folder of its persisted state."""

    def __init__(self, process: subprocess.Popen, folder: Path) -> None:
        self.process, self.folder = process, folder

    def stop(self) -> None:
        """SIGTERM: Flower saves its state and exits."""
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)

    def saved(self) -> bytes:
        return b"".join(p.read_bytes() for p in self.folder.iterdir() if p.name.startswith("flower.db"))

    def log(self) -> str:
        return (self.folder / "flower.log").read_text(errors="replace")


@pytest.fixture
def flower_state(tmp_path, celery_app) -> Iterator[FlowerState]:
    """The guarded Flower, persisting its state under tmp_path; stopped (and saved) at the end."""
    port = free_port()
    log_path = tmp_path / "flower.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "workers.ops.flower", "--port", str(port), "--data-dir", str(tmp_path)],
        cwd=ROOT,
        env={**os.environ, "FLOWER_BASIC_AUTH": CREDENTIALS},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"

    def answering() -> bool:
        assert process.poll() is None, log_path.read_text()[-2000:]
        try:
            get(f"{base}/healthcheck")
        except OSError:
            return False
        return True

    wait_until(answering, timeout=60, interval=0.3, what="Flower to answer")
    # Flower answers before its event consumer is connected: probe until it knows a task.
    probe = f"flower-probe-{uuid.uuid4().hex}"
    with celery_app.events.default_dispatcher() as dispatcher:

        def probe_known() -> bool:
            dispatcher.send("task-received", uuid=probe, name="tests.flower_probe", args="()", kwargs="{}")
            return get(f"{base}/api/task/info/{probe}", CREDENTIALS)[0] == 200

        wait_until(probe_known, timeout=30, interval=0.3, what="Flower's event consumer")
    state = FlowerState(process, tmp_path)
    yield state
    state.stop()
    log.close()


def redis_values(r: redis.Redis) -> Iterator[tuple[bytes, bytes]]:
    for key in r.scan_iter(count=1000):
        kind = r.type(key)
        if kind == b"string":
            values = [r.get(key) or b""]
        elif kind == b"list":
            values = r.lrange(key, 0, -1)
        elif kind == b"hash":
            values = [k + b"=" + v for k, v in r.hgetall(key).items()]
        elif kind == b"zset":
            values = [m for m, _ in r.zrange(key, 0, -1, withscores=True)]
        elif kind == b"set":
            values = list(r.smembers(key))
        else:
            values = []
        for value in values:
            yield key, value


def test_a_marker_submitted_as_content_appears_only_in_job_results(
    worker, client, faults, caplog, flower_state, celery_app, request, finished_runs
):
    marker = f"zqxmarker{uuid.uuid4().hex[:12]}"
    content = " ".join([marker] * 40)  # the emulator writes its reply from the content's words
    caplog.set_level(logging.INFO)
    # Sent events are off by default (a benchmarked saving); an operator may turn them on for
    # Flower, and then they must carry no content either: the retry's and notify's included.
    sent_events = celery_app.conf.task_send_sent_event
    celery_app.conf.task_send_sent_event = True
    request.addfinalizer(lambda: setattr(celery_app.conf, "task_send_sent_event", sent_events))
    stock = Celery("stock-producer", broker=get_settings().redis_url, backend=get_settings().redis_url)
    job_ids: list[str] = []

    with EventCapture(celery_app, finished_runs) as capture:
        # A provider failure (401: the job fails), notified
        faults.inject(FREE_PRIMARY, "unauthorized", times=1)
        failed = client.result(client.submit_script("leak-1", content, notify="producer.done"), timeout=30)
        assert failed["status"] == "failed", failed
        job_ids.append(failed["job_id"])
        faults.clear()
        # A Retry-After over the in-process cap: the tier task is retried with a countdown
        faults.inject(FREE_PRIMARY, "rate_limit", times=1, retry_after=3.5)
        retried = client.result(client.submit_analysis("leak-2", content, notify="producer.done"), timeout=60)
        assert retried["status"] == "succeeded", retried
        job_ids.append(retried["job_id"])
        # A plain success, notified, then asked for by job_status
        ok = client.result(client.submit_script("leak-3", content, notify="producer.done"), timeout=30)
        assert ok["status"] == "succeeded" and marker in ok["content"]
        job_ids.append(ok["job_id"])
        status = client.app.send_task("litink.job_status", kwargs={"job_id": ok["job_id"]}, queue="intake")
        assert status.get(timeout=30) == ok
        answers = [status.id]  # job_status's answer is that JobResult too
        # A rejection (NUL in the content), notified
        bad = client.result(client.submit_script("leak-4", content + "\x00", notify="producer.done"), timeout=30)
        assert bad["reason"] == "invalid_input"
        job_ids.append(bad["job_id"])
        # A stock producer: its message's kwargsrepr is a repr of the whole content
        stock_job = stock.send_task(
            "litink.submit_script", kwargs={"user_id": "leak-5", "content": content}, queue="intake"
        )
        assert stock_job.get(timeout=30)["status"] == "succeeded"
        job_ids.append(stock_job.id)
        for job_id in job_ids[:4]:
            wait_for(job_id)

    # Task events: the workers sent them (received, started, retried, succeeded, sent), and
    # none carries the marker
    kinds = {event["type"] for event in capture.events}
    assert {"task-received", "task-started", "task-succeeded", "task-retried", "task-sent"} <= kinds, kinds
    assert any(e.get("uuid") == ok["job_id"] for e in capture.events)
    leaked = [e for e in capture.events if marker in repr(e)]
    assert leaked == [], leaked[:3]

    # Logs: records were written about these jobs, none with the marker
    formatter = logging.Formatter("%(name)s %(message)s")
    lines = [formatter.format(record) + repr(record.__dict__.get("data", "")) for record in caplog.records]
    assert lines, "the worker logged nothing"
    assert [line for line in lines if marker in line] == []

    # Redis: the marker is in each job's stored JobResult and in the notify messages, nowhere else
    r = redis.Redis.from_url(get_settings().redis_url)
    allowed = {f"celery-task-meta-{task_id}".encode() for task_id in job_ids + answers} | {QUEUE.encode()}
    holders = {key for key, value in redis_values(r) if marker.encode() in value}
    assert f"celery-task-meta-{ok['job_id']}".encode() in holders  # the scan does find it
    assert holders <= allowed, holders - allowed

    # Flower: after a clean stop its persisted state holds these tasks, never the marker
    flower_state.stop()
    saved = flower_state.saved()
    assert ok["job_id"].encode() in saved
    assert marker.encode() not in saved
    assert marker not in flower_state.log()


def test_a_database_error_that_could_quote_row_data_is_replaced_by_a_reason_and_the_job_id(celery_app):
    from sqlalchemy import text as sql

    from db.session import transaction
    from workers.errors import DataRefused

    secret = f"zqxrow{uuid.uuid4().hex[:10]}"

    @celery_app.task(bind=True, name=f"tests.refused_{uuid.uuid4().hex[:6]}")
    def write_bad_row(self):
        with transaction() as conn:  # invalid JSON: Postgres's DataError quotes the token
            conn.execute(sql("SELECT CAST(:v AS jsonb)"), {"v": "{" + secret})

    outcome = write_bad_row.apply(task_id="job-42")
    assert isinstance(outcome.result, DataRefused)
    text_seen = str(outcome.result) + outcome.traceback
    assert "job-42" in str(outcome.result)
    assert secret not in text_seen  # Postgres's own message would say: Token "<secret>" is invalid
