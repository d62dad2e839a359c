"""Shared machinery of the benchmarks: services, the emulator process, worker processes,
CPU accounting from /proc, result polling and py-spy profiles.

Everything here talks to loopback only and every wait has a deadline.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
LOG_DIR = ROOT / ".data" / "bench"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/2"
# The test suites run against these at the same time; a benchmark must never touch them.
FORBIDDEN_DATABASES = {"test", "test_lead"}
FORBIDDEN_REDIS_DBS = {"0", "1"}
CLK_TCK = os.sysconf("SC_CLK_TCK")
READY_STATES = {"SUCCESS", "FAILURE", "REVOKED"}
KOMBU_PRIORITY_SEP = "\x06\x16"


def say(text: str = "") -> None:
    print(text, flush=True)


RUNTIME_PATHS = ("workers", "tasks", "db", "config", "celeryconfig.py", "emulator", "bench")


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()


def git_revision() -> str:
    """The commit measured and a fingerprint of the code the workers load (the runtime
    paths, uncommitted edits included): others may commit during a run, and two phases are
    comparable when their fingerprints are equal, whatever else changed (docs, CI)."""
    import hashlib

    try:
        rev = _git("rev-parse", "--short", "HEAD")
        trees = [_git("rev-parse", f"HEAD:{path}") for path in RUNTIME_PATHS]
        diff = _git("diff", "HEAD", "--", *RUNTIME_PATHS)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if not rev:
        return "unknown"
    code = hashlib.sha1("\n".join([*trees, diff]).encode()).hexdigest()[:8]
    return f"{rev} (code {code}{', uncommitted edits' if diff else ''})"


def same_code(revisions: Iterable[str]) -> bool:
    return len({r.split("(code ", 1)[-1] for r in revisions}) <= 1


# --------------------------------------------------------------------------- services


def configure_environment(private_redis_url: str | None = None) -> tuple[str, str]:
    """DATABASE_URL / REDIS_URL from the environment, else the benchmark defaults; put them
    in os.environ before anything reads the project's settings. Refuses the test databases.
    ``private_redis_url`` (the benchmark's own redis-server) replaces REDIS_URL."""
    database_url = os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    redis_url = private_redis_url or os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
    dbname = urlsplit(database_url).path.lstrip("/")
    redis_db = urlsplit(redis_url).path.lstrip("/") or "0"
    if private_redis_url:
        redis_db = "private"
    if os.environ.get("BENCH_ALLOW_ANY_DB") != "1":
        if dbname in FORBIDDEN_DATABASES:
            raise SystemExit(f"refusing database {dbname!r}: the tests use it (set BENCH_ALLOW_ANY_DB=1 to override)")
        if redis_db in FORBIDDEN_REDIS_DBS:
            raise SystemExit(f"refusing Redis db {redis_db}: the tests use it (set BENCH_ALLOW_ANY_DB=1 to override)")
    os.environ["DATABASE_URL"] = database_url
    os.environ["REDIS_URL"] = redis_url
    os.environ.setdefault("METRICS_PORT", "0")  # never bind the production metrics port
    return database_url, redis_url


def ensure_database(database_url: str) -> None:
    """Create the database if it is missing (when the server lets us), then migrate it."""
    import psycopg

    parts = urlsplit(database_url)
    dbname = parts.path.lstrip("/")
    try:
        psycopg.connect(database_url, connect_timeout=5).close()
    except psycopg.OperationalError as exc:
        if "does not exist" not in str(exc):
            raise
        admin_url = urlunsplit(parts._replace(path="/postgres"))
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{dbname}"')
        say(f"created database {dbname}")
    from db.migrate import upgrade_to_head

    upgrade_to_head(database_url)


def redis_client(redis_url: str):
    import redis

    return redis.Redis.from_url(redis_url)


def purge_queues(redis_url: str, queues: Iterable[str]) -> int:
    """Empty the given queues (every priority list) and Redis's unacked bookkeeping, so a
    leftover from an interrupted run cannot leak into a measurement. Returns messages dropped."""
    r = redis_client(redis_url)
    keys = []
    for q in queues:
        keys.append(q)
        keys += [f"{q}{KOMBU_PRIORITY_SEP}{p}" for p in range(10)]
    dropped = sum(r.llen(k) for k in keys if r.type(k) == b"list")
    r.delete(*keys, "unacked", "unacked_index", "unacked_mutex")
    return dropped


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- CPU from /proc


def proc_user_sys(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process, all threads."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def proc_cpu_seconds(pid: int) -> float:
    """user + system CPU of a process (all its threads), from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is the state (field 3 of stat); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # guest time is already inside user
    return (total - idle) / CLK_TCK, total / CLK_TCK


def children_cpu_total(pid: int) -> float:
    """CPU of a server process tree: the process itself, the children it already reaped
    (cutime/cstime), and its live children. For Postgres' postmaster that is every backend."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    total = sum(int(v) for v in fields[11:15]) / CLK_TCK  # utime stime cutime cstime
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                child = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(child[1]) == pid:  # ppid
            total += (int(child[11]) + int(child[12])) / CLK_TCK
    return total


def redis_commandstats(client: Any) -> dict[str, int]:
    """Calls per command since the server started (INFO commandstats), e.g. {"brpop": 12}."""
    out: dict[str, int] = {}
    for key, value in client.info("commandstats").items():
        name = key.removeprefix("cmdstat_")
        out[name] = int(value["calls"]) if isinstance(value, dict) else 0
    return out


class ServerCpu:
    """CPU and counters of the Postgres and Redis servers.

    - Postgres: the whole server (postmaster, every backend, background processes: other
      clients on the machine count too) and, separately, only the backends connected to the
      benchmark's database (pids from pg_stat_activity; a pooled worker keeps its sessions,
      so their CPU deltas are the benchmark's share of query work). Transactions and new
      sessions come from pg_stat_database for our database only.
    - Redis: the server's CPU and INFO commandstats. With the benchmark's private Redis
      server (the default) both are the benchmark's alone; on a shared server they include
      every other client."""

    def __init__(self, database_url: str, redis_url: str):
        import psycopg

        self.database_url = database_url
        self.dbname = urlsplit(database_url).path.lstrip("/")
        # One connection for every sample, so sampling opens no session of its own.
        self._conn = psycopg.connect(database_url, autocommit=True)
        self.own_backend = self._conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        with open(f"/proc/{self.own_backend}/stat") as f:
            self.pg_pid = int(f.read().rsplit(")", 1)[1].split()[1])
        self._redis = redis_client(redis_url)
        self.redis_pid = int(self._redis.info("server")["process_id"])
        if not (os.path.exists(f"/proc/{self.pg_pid}") and os.path.exists(f"/proc/{self.redis_pid}")):
            raise RuntimeError("Postgres or Redis does not run on this machine")

    def max_connections(self) -> int:
        return int(self._conn.execute("SHOW max_connections").fetchone()[0])

    def sessions_now(self) -> int:
        """Sessions open on our database right now (ours excluded)."""
        return int(
            self._conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (self.dbname,)
            ).fetchone()[0]
        )

    def _db_backends_cpu(self) -> dict[int, float]:
        pids = [
            row[0]
            for row in self._conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (self.dbname,)
            ).fetchall()
        ]
        out = {}
        for pid in pids:
            with contextlib.suppress(OSError):
                out[pid] = proc_cpu_seconds(pid)
        return out

    def sample(self) -> dict[str, Any]:
        self._conn.execute("SELECT pg_stat_clear_snapshot()")
        sessions, xacts = self._conn.execute(
            "SELECT sessions, xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s", (self.dbname,)
        ).fetchone()
        return {
            "postgres_cpu": children_cpu_total(self.pg_pid),
            "pg_backends": self._db_backends_cpu(),
            "redis_cpu": proc_cpu_seconds(self.redis_pid),
            "pg_sessions": float(sessions),
            "pg_xacts": float(xacts),
            "redis_commands": float(self._redis.info("stats")["total_commands_processed"]),
            "redis_commandstats": redis_commandstats(self._redis),
        }


def backends_cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU the benchmark database's backends used between two samples: the delta of each
    backend alive at both, plus all of each backend born in between (a backend that exited
    in between is lost: the report shows new sessions, which should be 0 with a pool)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def server_cpu_or_none(database_url: str, redis_url: str) -> ServerCpu | None:
    try:
        return ServerCpu(database_url, redis_url)
    except Exception as exc:  # remote servers: nothing to read from /proc
        say(f"(server CPU not measured: {exc})")
        return None


class PrivateRedis:
    """A redis-server of the benchmark's own on a free loopback port, no persistence (like
    the machine's), so its CPU and INFO commandstats count the benchmark alone."""

    def __init__(self) -> None:
        from shutil import which

        exe = which("redis-server")
        if exe is None:
            raise SystemExit("redis-server is not on PATH: install it, or pass --redis env to use REDIS_URL")
        self.port = free_port()
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self._log = open(LOG_DIR / "redis.log", "w")
        self.proc = subprocess.Popen(
            [
                exe,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(LOG_DIR),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.url = f"redis://127.0.0.1:{self.port}/0"
        deadline = time.monotonic() + 20
        while True:
            try:
                if redis_client(self.url).ping():
                    break
            except Exception:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise SystemExit(f"the private redis-server did not start; see {LOG_DIR / 'redis.log'}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        stop_process(self.proc)
        self._log.close()


# --------------------------------------------------------------------------- processes


def stop_process(proc: subprocess.Popen) -> None:
    """Terminate a server the benchmark started; kill it if it does not go within 10 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


class Emulator:
    """The OpenRouter emulator as its own process (`python -m emulator`), so its CPU is
    never counted in a worker's."""

    def __init__(self, latency_ms: float = 0):
        from emulator.control import EmulatorControl

        self.port = free_port()
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self._log = open(LOG_DIR / "emulator.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "emulator", "--port", str(self.port), "--latency-ms", str(latency_ms)],
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.base_url = f"http://127.0.0.1:{self.port}/api/v1"
        self.control = EmulatorControl(self.base_url)
        deadline = time.monotonic() + 30
        while not self.control.health():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"the emulator did not start; see {LOG_DIR / 'emulator.log'}")
            time.sleep(0.05)

    def cpu(self) -> float:
        return proc_cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        stop_process(self.proc)
        self._log.close()


@dataclass
class Worker:
    """One `celery worker` process (threads pool), started directly (no shell), so its pid
    is the process whose CPU we read."""

    app_module: str
    queues: list[str]
    concurrency: int
    env: dict[str, str]
    label: str
    name: str = field(default_factory=lambda: f"bench-{uuid.uuid4().hex[:8]}@localhost")
    proc: subprocess.Popen | None = None
    log_path: Path | None = None

    def start(self) -> None:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.log_path = LOG_DIR / f"worker-{self.label}.log"
        log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                self.app_module,
                "worker",
                "-P",
                "threads",
                "-c",
                str(self.concurrency),
                "-Q",
                ",".join(self.queues),
                "-n",
                self.name,
                "-l",
                "WARNING",
                "--without-mingle",
                "--without-gossip",
            ],
            cwd=ROOT,
            env=os.environ | self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cpu(self) -> float:
        return proc_cpu_seconds(self.pid)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def pause(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGCONT)  # a paused worker cannot handle SIGTERM
            self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def wait_ready(app, workers: list[Worker], timeout: float = 90) -> None:
    """Until every worker answers a ping (its consumer is running)."""
    deadline = time.monotonic() + timeout
    pending = {w.name: w for w in workers}
    while pending:
        for w in pending.values():
            if not w.alive():
                raise SystemExit(f"worker {w.label} exited during start-up; see {w.log_path}")
        if time.monotonic() > deadline:
            raise SystemExit(f"workers did not start in {timeout:.0f}s: {sorted(pending)}")
        for reply in app.control.ping(destination=list(pending), timeout=0.5) or []:
            for name in reply:
                pending.pop(name, None)


# --------------------------------------------------------------------------- results


def wait_results(
    redis_url: str,
    ids: list[str],
    timeout: float,
    poll: float = 0.2,
    progress: str | None = None,
    workers: list[Worker] | None = None,
) -> dict[str, dict[str, Any]]:
    """Poll the Celery result backend until every id has a final result, the deadline, or
    (when ``workers`` are given) until none of them is alive any more.
    Returns id -> result meta (status, result, date_done) for the ids that finished."""
    r = redis_client(redis_url)
    pending = list(ids)
    done: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    last_print = 0.0
    while pending and time.monotonic() < deadline:
        still = []
        for i in range(0, len(pending), 1000):
            chunk = pending[i : i + 1000]
            for job_id, raw in zip(chunk, r.mget([f"celery-task-meta-{j}" for j in chunk]), strict=False):
                meta = json.loads(raw) if raw else None
                if meta and meta.get("status") in READY_STATES:
                    done[job_id] = meta
                else:
                    still.append(job_id)
        pending = still
        if progress and time.monotonic() - last_print > 5:
            last_print = time.monotonic()
            print(f"    {progress}: {len(done)}/{len(ids)} done", flush=True)
        if pending and workers is not None and not any(w.alive() for w in workers):
            say(f"    every worker exited with {len(pending)} jobs unfinished; see {LOG_DIR}")
            break
        if pending:
            time.sleep(poll)
    return done


def delete_results(redis_url: str, ids: list[str]) -> None:
    r = redis_client(redis_url)
    for i in range(0, len(ids), 1000):
        r.delete(*[f"celery-task-meta-{j}" for j in ids[i : i + 1000]])


def last_done(metas: Iterable[dict[str, Any]]) -> float:
    """The latest date_done (epoch seconds) among result metas."""
    return max(datetime.fromisoformat(m["date_done"]).timestamp() for m in metas)


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


# --------------------------------------------------------------------------- py-spy


def py_spy_path() -> str | None:
    candidate = Path(sys.executable).with_name("py-spy")
    if candidate.exists():
        return str(candidate)
    from shutil import which

    return which("py-spy")


class Profiler:
    """`py-spy record --pid --gil` on a worker, in raw (collapsed stack) format: each sample is
    the stack of the thread holding the GIL, i.e. Python-level CPU. (Without --gil, py-spy
    counts threads blocked in socket reads as active and overstates the CPU 2 to 3 times.)
    Stopped with SIGINT, on which py-spy writes its file."""

    def __init__(self, pid: int, out: Path, rate: int = 100):
        exe = py_spy_path()
        if exe is None:
            raise SystemExit("py-spy is not installed: `.venv/bin/pip install py-spy` (it is not a project dependency)")
        self.out = out
        self._log = open(out.with_suffix(".log"), "w")
        self.proc = subprocess.Popen(
            [
                exe,
                "record",
                "--pid",
                str(pid),
                "--rate",
                str(rate),
                "--format",
                "raw",
                "--nonblocking",
                "--gil",
                "--output",
                str(out),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def stop(self) -> Path:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()
        return self.out


def dump_stacks(workers: list[Worker], label: str) -> str:
    """Every thread's stack of each (live) worker, via `py-spy dump`, to a file: where a
    stuck job is stuck. Returns the file's path, or why there is none."""
    exe = py_spy_path()
    if exe is None:
        return "py-spy not installed"
    out = LOG_DIR / f"stacks-{label}.txt"
    with open(out, "w") as f:
        for w in workers:
            if not w.alive():
                continue
            f.write(f"==== worker {w.label} pid {w.pid}\n")
            f.flush()
            try:
                subprocess.run([exe, "dump", "--pid", str(w.pid)], stdout=f, stderr=subprocess.STDOUT, timeout=60)
            except subprocess.TimeoutExpired:
                f.write("(py-spy dump timed out)\n")
    return str(out)


def _frame_parts(frame: str) -> tuple[str, str]:
    """'func (path/file.py:123)' -> ('func', 'path/file.py')."""
    name, _, rest = frame.partition(" (")
    path = rest.rstrip(")").rsplit(":", 1)[0]
    return name, path


def _short_path(path: str) -> str:
    for marker in ("site-packages/", "lib/python3."):
        if marker in path:
            path = path.split(marker, 1)[1]
            if marker.startswith("lib/python3."):
                path = path.split("/", 1)[1] if "/" in path else path
            break
    root = str(ROOT) + "/"
    return path[len(root) :] if path.startswith(root) else path


PACKAGE_GROUPS = [  # (label, path prefixes), first match wins, applied to the leaf frame
    ("project: workers/", ("workers/",)),
    ("project: tasks/", ("tasks/",)),
    ("project: db/, config/", ("db/", "config/")),
    ("bench/", ("bench/",)),
    ("celery", ("celery/",)),
    ("billiard (ExceptionInfo)", ("billiard/",)),
    ("traceback/linecache/ast", ("traceback.py", "linecache.py", "ast.py")),
    ("kombu", ("kombu/",)),
    ("redis-py", ("redis/",)),
    ("sqlalchemy", ("sqlalchemy/",)),
    ("psycopg", ("psycopg", "psycopg_binary")),
    ("openai SDK", ("openai/",)),
    ("httpx/httpcore", ("httpx", "httpcore", "h11/", "anyio/")),
    ("pydantic", ("pydantic",)),
    ("prometheus_client", ("prometheus_client/",)),
    ("logging", ("logging/",)),
    ("json", ("json/",)),
    ("ssl/socket/selectors", ("ssl.py", "socket.py", "selectors.py")),
    ("threading/queue", ("threading.py", "queue.py", "concurrent/")),
]


# What a sample was doing: the first activity (in this order) with a frame anywhere in the
# sample's stack. Ordered from the most specific to the most general.
ACTIVITIES = [
    (
        "Task.replace's Ignore: exception info + log line (celery/billiard)",
        ("ExceptionInfo.__init__ (billiard", "TraceInfo.handle_ignore (celery"),
    ),
    ("task events (worker_send_task_events)", ("EventDispatcher.", "Consumer._flush_events")),
    ("logging", ("Logger._log (", "Logger.log (", "Handler.handle (")),
    ("prometheus metrics", ("prometheus_client/",)),
    ("per-user rate limiter (Redis)", ("UserRateLimiter.hit (",)),
    ("LLM call: openai SDK + HTTP", ("OpenRouterClient.complete (", "Completions.create (")),
    (
        "SQL statements (SQLAlchemy + psycopg)",
        (
            "Connection.execute (sqlalchemy",
            "Connection.exec_driver_sql (",
            "text (sqlalchemy",
            "Result.first (sqlalchemy",
            "Result.one (sqlalchemy",
            "Result.scalar (sqlalchemy",
            "Result.all (sqlalchemy",
        ),
    ),
    (
        "DB transaction overhead (pool checkout, pre-ping, begin/commit)",
        ("transaction (db/session.py", "Engine.begin ("),
    ),
    ("storing results (Redis backend)", ("store_result (", "mark_as_done (")),
    ("acking messages", ("Message.ack (", "QoS.ack (", "Request.acknowledge (")),
    ("publishing Celery messages", ("Producer.publish (", "Celery.send_task (", "Signature.apply_async (")),
    (
        "receiving Celery messages (BRPOP, message handler)",
        ("Channel._brpop_read (", "on_task_received (", "task_message_handler (", "on_poll_start ("),
    ),
    ("thread pool hand-off", ("ThreadPoolExecutor.submit (", "TaskPool.on_apply (")),
]


def activity_of(frames: list[str]) -> str:
    for label, patterns in ACTIVITIES:
        if any(pattern in frame for frame in frames for pattern in patterns):
            return label
    return "other (Celery task tracing, task bodies, event loop)"


def read_profile(path: Path) -> tuple[int, list[tuple[list[str], int]]]:
    stacks = []
    total = 0
    if not path.exists():
        return 0, []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        stacks.append((stack.split(";"), n))
    return total, stacks


def summarize_profile(paths: list[Path], top: int = 25) -> dict[str, Any]:
    """Self time by function, inclusive time by function (project code and all), and self
    time by package, from py-spy raw files."""
    total = 0
    self_fn: Counter[str] = Counter()
    incl_fn: Counter[str] = Counter()
    by_group: Counter[str] = Counter()
    by_activity: Counter[str] = Counter()
    for path in paths:
        n_total, stacks = read_profile(path)
        total += n_total
        for frames, n in stacks:
            labels = []
            for frame in frames:
                name, file = _frame_parts(frame)
                labels.append(f"{name} ({_short_path(file)})")
            if not labels:
                continue
            self_fn[labels[-1]] += n
            by_activity[activity_of(frames)] += n
            for label in set(labels):
                incl_fn[label] += n
            _, leaf_file = _frame_parts(frames[-1])
            short = _short_path(leaf_file)
            group = next((g for g, prefixes in PACKAGE_GROUPS if short.startswith(prefixes)), "other")
            by_group[group] += n
    project = [
        (k, v)
        for k, v in incl_fn.most_common()
        if k.split(" (", 1)[1].startswith(("workers/", "tasks/", "db/", "config/"))
    ]
    pct = lambda n: round(100.0 * n / total, 1) if total else 0.0  # noqa: E731
    return {
        "samples": total,
        "self": [(k, v, pct(v)) for k, v in self_fn.most_common(top)],
        "inclusive": [(k, v, pct(v)) for k, v in incl_fn.most_common(top)],
        "project_inclusive": [(k, v, pct(v)) for k, v in project[:top]],
        "by_package": [(k, v, pct(v)) for k, v in by_group.most_common()],
        "by_activity": [(k, v, pct(v)) for k, v in by_activity.most_common()],
    }


def print_profile(summary: dict[str, Any], title: str) -> None:
    say(f"\n== Profile: {title} ({summary['samples']} samples at 100 Hz of the thread holding the GIL) ==")
    for key, heading in (
        ("by_activity", "By activity (first match in a fixed order, see bench/common.py)"),
        ("by_package", "Self time by package (leaf frame)"),
        ("self", "Top functions by self CPU"),
        ("project_inclusive", "Project functions by inclusive CPU"),
        ("inclusive", "Top functions by inclusive CPU"),
    ):
        say(f"\n  {heading}:")
        for label, n, pct in summary[key]:
            say(f"    {pct:5.1f}%  {n:6d}  {label}")
