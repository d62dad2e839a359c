"""The production broker topology: Redis primary + replica watched by three Sentinels, a worker
process on ``sentinel://`` URLs. Killing the primary mid-run loses no job.

Every server here is this test's own (free ports, a tmp dir); the machine's Redis is untouched.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
import redis
from sqlalchemy import text

from config import get_catalog
from devtools.embedded import free_port
from tasks.client import LitinkClient
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
REDIS_SERVER = shutil.which("redis-server")
MASTER = "litink"
JOBS = 12
EMULATOR_LATENCY_MS = 1500
SLOTS = 6

pytestmark = pytest.mark.skipif(
    REDIS_SERVER is None, reason="redis-server is not installed, so no Redis primary, replica and Sentinels can start"
)


def _ask(port: int, *command: object, **options: object) -> object:
    """One command to the Redis or Sentinel on ``port``, on a connection closed afterwards."""
    with redis.Redis(port=port, socket_timeout=2, **options) as client:  # type: ignore[arg-type]
        return client.execute_command(*command)


def _answers(port: int) -> bool:
    try:
        return bool(_ask(port, "PING"))
    except redis.RedisError:
        return False


class Topology:
    """A primary, a replica and three Sentinels (quorum 2, 1 s to declare the primary down)."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.primary, self.replica = free_port(), free_port()
        self.sentinels = [free_port() for _ in range(3)]
        self.procs: dict[int, subprocess.Popen] = {}
        self.logs: list[IO[str]] = []

    def _start(self, port: int, *args: str) -> None:
        log = open(self.workdir / f"{port}.log", "w")  # noqa: SIM115 (closed in stop())
        self.logs.append(log)
        self.procs[port] = subprocess.Popen([REDIS_SERVER, *args], stdout=log, stderr=subprocess.STDOUT)
        wait_until(lambda: _answers(port), timeout=10, what=f"redis on port {port}")

    def start(self) -> None:
        for port, extra in ((self.primary, []), (self.replica, ["--replicaof", "127.0.0.1", str(self.primary)])):
            data = self.workdir / str(port)
            data.mkdir()
            # appendonly: the broker is persistent, as docs/operations.md asks of production.
            self._start(port, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data), "--save", "",
                        "--appendonly", "yes", *extra)  # fmt: skip
        wait_until(self._replica_in_sync, timeout=10, what="the replica to sync")
        for port in self.sentinels:
            conf = self.workdir / f"sentinel-{port}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.workdir}\n"
                f"sentinel monitor {MASTER} 127.0.0.1 {self.primary} 2\n"
                f"sentinel down-after-milliseconds {MASTER} 1000\n"
                f"sentinel failover-timeout {MASTER} 10000\n"
                f"sentinel parallel-syncs {MASTER} 1\n"
            )
            self._start(port, str(conf), "--sentinel")
        wait_until(
            lambda: all(self._sees_replica(p) for p in self.sentinels),
            timeout=15,
            what="every Sentinel to see the replica",
        )

    def _replica_in_sync(self) -> bool:
        with redis.Redis(port=self.replica) as client:
            return client.info("replication").get("master_link_status") == "up"

    def _sees_replica(self, sentinel_port: int) -> bool:
        with redis.Redis(port=sentinel_port, decode_responses=True) as sentinel:
            replicas = sentinel.sentinel_slaves(MASTER)
        return any(r.get("port") == self.replica and "s_down" not in r.get("flags", "") for r in replicas)

    def master_port(self) -> int:
        with redis.Redis(port=self.sentinels[0]) as sentinel:
            _host, port = sentinel.sentinel_get_master_addr_by_name(MASTER)
        return int(port)

    @property
    def url(self) -> str:
        return ";".join(f"sentinel://127.0.0.1:{port}/0" for port in self.sentinels)

    def kill_primary(self) -> None:
        self.procs[self.primary].send_signal(signal.SIGKILL)
        self.procs[self.primary].wait()

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        for log in self.logs:
            log.close()


@pytest.fixture
def topology(tmp_path) -> Iterator[Topology]:
    running = Topology(tmp_path)
    try:
        running.start()
        yield running
    finally:
        running.stop()


@pytest.fixture
def sentinel_worker(topology, emulator) -> Iterator[LitinkClient]:
    """A `celery worker` process configured only through REDIS_URL=sentinel://... and
    REDIS_SENTINEL_MASTER, and a producer client on the same Sentinels."""
    client = LitinkClient(topology.url, transport_options={"master_name": MASTER})
    name = f"sentinel-{uuid.uuid4().hex[:8]}@localhost"
    env = os.environ | {
        "REDIS_URL": topology.url,
        "REDIS_SENTINEL_MASTER": MASTER,
        # Short, so a message the worker held when its connection broke is redelivered soon.
        "VISIBILITY_TIMEOUT": "20",
    }
    argv = [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "-P", "threads", "-c", str(SLOTS),
            "-Q", ",".join(get_catalog().queues()), "-n", name, "--without-mingle", "--without-gossip",
            "-l", "WARNING"]  # fmt: skip
    proc = subprocess.Popen(argv, env=env, cwd=ROOT)
    try:
        wait_until(
            lambda: client.app.control.ping(destination=[name], timeout=0.5), timeout=30, what="the worker to answer"
        )
        yield client
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        client.app.close()


def _statuses(db, job_ids: list[str]) -> dict[str, str]:
    rows = db.execute(text("SELECT id, status FROM jobs WHERE id = ANY(:ids)"), {"ids": job_ids}).all()
    return {r.id: r.status for r in rows}


def _diagnosis(db, job_ids: list[str], topology: Topology) -> str:
    statuses = _statuses(db, job_ids)
    unfinished = {j: statuses.get(j, "no jobs row") for j in job_ids if statuses.get(j) != "succeeded"}
    with redis.Redis(port=topology.master_port(), decode_responses=True) as broker:
        queues = {k: broker.llen(k) for k in broker.keys("*") if broker.type(k) == "list"}
        unacked = broker.hlen("unacked")
    return f"unfinished {unfinished}; lists on the new primary {queues}; unacked {unacked}"


def test_every_job_finishes_when_the_broker_primary_dies_mid_run_and_sentinel_fails_over(
    topology, sentinel_worker, faults, db, capsys
):
    # Given a worker on sentinel:// URLs, and jobs that each take about 1.5 s at the provider
    client = sentinel_worker
    faults.set_latency(EMULATOR_LATENCY_MS)
    job_ids = [client.submit_analysis(f"sentinel-user-{i}", f"Chapter {i}.", "summary") for i in range(JOBS)]
    # When the primary is killed while every slot waits on the provider and the other jobs wait
    # in their queue. (Killed in the instant a message is published or popped, Redis's
    # asynchronous replication could lose that message: Postgres's recovery loop covers that
    # case, tests/pipeline/test_recovery.py; this test is about the failover itself.)
    wait_until(
        lambda: (s := list(_statuses(db, job_ids).values())) and len(s) == JOBS and s.count("running") == SLOTS,
        timeout=30,
        what="every job admitted and every slot running one",
    )
    time.sleep(0.3)  # the slots are now inside their provider calls: the broker is idle
    _ask(topology.primary, "WAIT", 1, 2000)  # the replica has every write so far
    finished_before = sum(s == "succeeded" for s in _statuses(db, job_ids).values())
    killed_at = time.monotonic()
    topology.kill_primary()
    wait_until(lambda: topology.master_port() == topology.replica, timeout=30, what="Sentinel to promote the replica")
    failover_s = time.monotonic() - killed_at
    # Then every job reaches its final state, in Postgres and as the producer reads it
    try:
        wait_until(
            lambda: list(_statuses(db, job_ids).values()) == ["succeeded"] * JOBS,
            timeout=60,
            interval=0.5,
            what="every job to succeed",
        )
    except AssertionError:
        raise AssertionError(f"not all jobs succeeded: {_diagnosis(db, job_ids, topology)}") from None
    all_done_s = time.monotonic() - killed_at
    results = [client.result(job_id, timeout=30) for job_id in job_ids]
    assert [r["status"] for r in results] == ["succeeded"] * JOBS
    with capsys.disabled():
        print(
            f"\n[sentinel failover] {JOBS} jobs ({SLOTS} running, {JOBS - SLOTS - finished_before} queued,"
            f" {finished_before} done when the primary was killed);"
            f" Sentinel promoted the replica in {failover_s:.1f} s;"
            f" all {JOBS} succeeded {all_done_s:.1f} s after the kill"
        )
