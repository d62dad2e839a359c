"""Servers a failure test owns: its own Redis and Postgres (never the machine's shared ones),
and worker processes (with an embedded beat, so recovery runs) pointed at them."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import redis
from celery import Celery

from config import get_catalog
from devtools.embedded import free_port

ROOT = Path(__file__).resolve().parents[1]
PG_BIN = Path("/usr/lib/postgresql/15/bin")


class RedisServer:
    """A private redis-server on a free port, by default keeping nothing on disk."""

    def __init__(self, directory: Path, *extra: str) -> None:
        self.port = free_port()
        self.directory = directory
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port)

    def start(self) -> None:
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory)]
        argv += ["--save", "", "--appendonly", "no", *self.extra]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                if self.client().ping():
                    return
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()  # like a crash: nothing is saved
            self.proc.wait(10)
        self.proc = None

    def restart(self, down_seconds: float = 1.0) -> None:
        self.stop()
        time.sleep(down_seconds)
        self.start()


@contextmanager
def redis_server(*extra: str) -> Iterator[RedisServer]:
    directory = Path(tempfile.mkdtemp(prefix="litink-redis-"))
    server = RedisServer(directory, *extra)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


class PostgresCluster:
    """A throw-away Postgres cluster (initdb + pg_ctl, as the postgres user) on a free port."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.data = directory / "data"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *argv: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *argv], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-w",
            "-l",
            str(self.directory / "log"),
            "start",
        )

    def stop(self) -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")


@contextmanager
def postgres_cluster() -> Iterator[PostgresCluster]:
    directory = Path(tempfile.mkdtemp(prefix="litink-pg-"))
    cluster = PostgresCluster(directory)
    cluster.init()
    cluster.start()
    try:
        yield cluster
    finally:
        with suppress(subprocess.CalledProcessError):
            cluster.stop()
        shutil.rmtree(directory, ignore_errors=True)


class Workers:
    """Worker processes (threads pool) on a given broker, optionally one with an embedded beat."""

    def __init__(self, broker_url: str, env: dict[str, str]) -> None:
        self.broker_url = broker_url
        self.env = env
        self.procs: list[subprocess.Popen[bytes]] = []
        self.control = Celery("litink-test-control", broker=broker_url)

    def spawn(
        self, *, concurrency: int = 8, beat: bool = False, wait: bool = True, queues: list[str] | None = None
    ) -> subprocess.Popen[bytes]:
        name = f"test-{uuid.uuid4().hex[:8]}@localhost"
        argv = [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "-P", "threads"]
        argv += ["-c", str(concurrency), "-Q", ",".join(queues or get_catalog().queues()), "-n", name]
        argv += ["--without-mingle", "--without-gossip", "-l", "WARNING"]
        if beat:
            argv += ["-B", "-s", str(Path(tempfile.mkdtemp(prefix="litink-beat-")) / "schedule")]
        proc = subprocess.Popen(argv, env=os.environ | self.env, cwd=ROOT)
        self.procs.append(proc)
        if wait:
            deadline = time.monotonic() + 30
            while not self.control.control.ping(destination=[name], timeout=0.5):
                assert proc.poll() is None, "worker exited during start-up"
                assert time.monotonic() < deadline, "worker did not answer a ping within 30 s"
        return proc

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def alive(self) -> list[bool]:
        return [p.poll() is None for p in self.procs]

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


@contextmanager
def workers(broker_url: str, **env: Any) -> Iterator[Workers]:
    running = Workers(broker_url, {"REDIS_URL": broker_url} | {k.upper(): str(v) for k, v in env.items()})
    try:
        yield running
    finally:
        running.stop()
