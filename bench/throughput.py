"""Throughput and CPU per job: the Litink pipeline against a bare Celery + openai SDK baseline.

    python -m bench.throughput [--jobs N] [--latency 0,1000] [--worker-procs 1,2]
                               [--concurrency 200] [--json out.json] [--profile]

Variants, each measured in the same run on the same machine:

- noop:     bare Celery no-op tasks (bench/baseline_app.py), one worker process;
- sdk:      bare Celery tasks that make the same chat completion with the openai SDK against
            the emulator; no intake, no database. The baseline the targets are ratios of;
- litellm:  a LiteLLM Router (no queue, no database) making the same chat completion at the
            same concurrency, in its own process (bench/litellm_runner.py). Optional:
            `.venv/bin/pip install -e '.[bench]'`; skipped with a message when missing;
- pipeline: the full Litink path: litink.submit_script -> intake -> self.replace onto the
            tier queue -> emulator call -> llm_calls row and settlement in Postgres, for each
            number of worker processes in --worker-procs.

Method (the same for every variant):
1. start the worker process(es) (`celery worker -P threads -c <concurrency>`), wait until
   each answers a ping, run a warm-up batch (threads spawned, HTTP and DB pools filled);
2. pause the workers (SIGSTOP) and pre-enqueue every measured job with a stock producer,
   so the producer's CPU and pacing play no part;
3. read each worker's CPU (user+sys from /proc/<pid>/stat), resume them (SIGCONT) and
   take that instant as t0;
4. wait for every job's final result in the result backend; throughput = jobs / (latest
   `date_done` - t0); CPU per job = the workers' CPU used between resume and the end / jobs.

The emulator runs as its own process (`python -m emulator`), so its CPU is not counted in
the workers'; it is reported separately, as are Postgres (the benchmark database's
backends), Redis (a private redis-server by default) and the whole machine per job, with
SQL statements (counted in the worker: bench/counted_app.py) and Redis commands (INFO
commandstats) per job. docs/benchmarks.md explains every column.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench.common import (
    LOG_DIR,
    ROOT,
    Emulator,
    PrivateRedis,
    Profiler,
    Worker,
    backends_cpu_delta,
    configure_environment,
    delete_results,
    dump_stacks,
    ensure_database,
    git_revision,
    last_done,
    machine_cpu,
    print_profile,
    proc_user_sys,
    purge_queues,
    same_code,
    say,
    server_cpu_or_none,
    summarize_profile,
    wait_ready,
    wait_results,
)

CONTENT = (
    "Mara kept the last lighthouse on the northern coast. Every night she logged the ships that passed, "
    "until the night a ship with no lights answered her signal with a song she had written as a child. "
    "In the morning the logbook held one more entry, in a hand that was not hers."
)
SCRIPT_TYPE = "cinematic"
PIPELINE_TIERS = ("enterprise", "professional")  # both run the same models (config/tiers.toml)
DEFAULT_JOBS = {0: 1500}  # latency 0 ms; any other latency: 2000
DEFAULT_JOBS_OTHER = 2000


@dataclass
class PhaseResult:
    variant: str
    latency_ms: float | None
    procs: int
    concurrency: int
    jobs: int
    completed: int = 0
    succeeded: int = 0
    wall_s: float = 0.0
    jobs_per_s: float = 0.0
    worker_cpu_ms_per_job: float = 0.0
    worker_sys_ms_per_job: float = 0.0
    emulator_cpu_ms_per_job: float | None = None
    machine_cpu_ms_per_job: float = 0.0
    machine_busy_pct: float = 0.0
    # ms of CPU per job by component: workers, postgres (our database's backends),
    # postgres_server (the whole server), redis, emulator, system (= workers + postgres +
    # redis + emulator), harness (this process: producer, polling), machine (/proc/stat)
    components: dict[str, float] = field(default_factory=dict)
    servers: dict[str, float] = field(default_factory=dict)
    sql: dict[str, float] = field(default_factory=dict)  # per job, counted in the worker
    redis_commands: dict[str, float] = field(default_factory=dict)  # per job, INFO commandstats
    checks: dict[str, Any] = field(default_factory=dict)
    revision: str = ""  # the code the workers loaded (others may commit during a run)
    ok: bool = False
    skipped: str | None = None
    profile: dict[str, Any] | None = None

    @property
    def label(self) -> str:
        if self.latency_ms is None:
            return f"{self.variant}-{self.procs}p"
        return f"{self.variant}-{int(self.latency_ms)}ms-{self.procs}p"


def per_job(value: float, n: int, scale: float = 1000.0, digits: int = 2) -> float:
    return round(scale * value / max(1, n), digits)


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.private_redis: PrivateRedis | None = PrivateRedis() if args.redis == "private" else None
        self.database_url, self.redis_url = configure_environment(
            self.private_redis.url if self.private_redis else None
        )
        self.run_id = uuid.uuid4().hex[:6]
        self.emulator: Emulator | None = None
        self.results: list[PhaseResult] = []
        self.max_connections: int | None = None

    # ----------------------------------------------------------------- set-up

    def setup(self) -> None:
        ensure_database(self.database_url)
        self.servers = server_cpu_or_none(self.database_url, self.redis_url)
        self.emulator = Emulator(latency_ms=0)
        os.environ["OPENROUTER_BASE_URL"] = self.emulator.base_url
        os.environ["OPENROUTER_API_KEY"] = "sk-or-bench-emulator"
        redis_kind = "private redis-server" if self.private_redis else "REDIS_URL (shared: other clients count)"
        say(
            f"Postgres {self.database_url} | Redis {self.redis_url} ({redis_kind}) | "
            f"emulator {self.emulator.base_url} (own process)"
        )
        if self.servers:
            self.max_connections = self.servers.max_connections()
            say(
                f"Postgres max_connections = {self.max_connections}"
                f"{'' if self.max_connections == 100 else ' (the targets assume 100)'}; "
                f"{self.servers.sessions_now()} sessions open on {self.servers.dbname} now"
            )
        from config import get_settings

        pool = getattr(get_settings(), "db_pool_size", None)  # DB_POOL_SIZE, where the settings have it
        if pool is not None:
            procs = max(parse_list(self.args.worker_procs or "1,2", int))
            say(f"pipeline workers: DB_POOL_SIZE = {pool} per process, {procs * pool} connections at {procs} processes")

    def stop(self) -> None:
        if self.emulator:
            self.emulator.stop()
        if self.private_redis:
            self.private_redis.stop()

    def worker_env(self) -> dict[str, str]:
        env = {
            "OPENROUTER_BASE_URL": self.emulator.base_url,
            "OPENROUTER_API_KEY": "sk-or-bench-emulator",
            "METRICS_PORT": "0",
            "PYTHONUNBUFFERED": "1",
            "REDIS_URL": self.redis_url,
            "DATABASE_URL": self.database_url,
        }
        if self.args.log_level:
            env["LOG_LEVEL"] = self.args.log_level
        return env

    # ----------------------------------------------------------------- measurements

    def snapshot(self, pids: list[int]) -> dict[str, Any]:
        """Everything read at t0 and at the end of a phase."""
        return {
            "procs": [proc_user_sys(pid) for pid in pids],
            "emulator": self.emulator.cpu(),
            "emulator_stats": self.emulator.control.stats(),
            "harness": sum(proc_user_sys(os.getpid())),
            "machine": machine_cpu(),
            "servers": self.servers.sample() if self.servers else None,
        }

    def account(self, result: PhaseResult, s0: dict[str, Any], s1: dict[str, Any], after: dict | None) -> None:
        """CPU by component, server counters and the emulator's checks, per completed job.
        ``after`` is a server sample taken once the workers stopped (Postgres flushes its
        transaction counters with a delay)."""
        n = max(1, result.completed)
        user_sys = [(u1 - u0, y1 - y0) for (u0, y0), (u1, y1) in zip(s0["procs"], s1["procs"], strict=True)]
        workers = sum(u + y for u, y in user_sys)
        result.worker_cpu_ms_per_job = per_job(workers, n)
        result.worker_sys_ms_per_job = per_job(sum(y for _, y in user_sys), n)
        emulator = s1["emulator"] - s0["emulator"]
        result.emulator_cpu_ms_per_job = per_job(emulator, n) if result.variant != "noop" else None
        busy = s1["machine"][0] - s0["machine"][0]
        total = s1["machine"][1] - s0["machine"][1]
        result.machine_cpu_ms_per_job = per_job(busy, n)
        result.machine_busy_pct = round(100 * busy / max(1e-9, total), 1)
        comp = {"workers": result.worker_cpu_ms_per_job}
        srv0, srv1 = s0["servers"], s1["servers"]
        if srv0 and srv1:
            comp["postgres"] = per_job(backends_cpu_delta(srv0["pg_backends"], srv1["pg_backends"]), n)
            comp["postgres_server"] = per_job(srv1["postgres_cpu"] - srv0["postgres_cpu"], n)
            comp["redis"] = per_job(srv1["redis_cpu"] - srv0["redis_cpu"], n)
            stats0, stats1 = srv0["redis_commandstats"], srv1["redis_commandstats"]
            deltas = {k: v - stats0.get(k, 0) for k, v in stats1.items() if v - stats0.get(k, 0) > 0}
            result.redis_commands = {
                k: per_job(v, n, scale=1.0, digits=2) for k, v in sorted(deltas.items(), key=lambda kv: -kv[1])
            }
            result.servers = {
                "redis_commands_per_job": per_job(srv1["redis_commands"] - srv0["redis_commands"], n, 1.0, 1),
            }
            if after:
                result.servers["pg_transactions_per_job"] = per_job(after["pg_xacts"] - srv0["pg_xacts"], n, 1.0)
                result.servers["pg_new_sessions"] = int(after["pg_sessions"] - srv0["pg_sessions"])
        comp["emulator"] = per_job(emulator, n)
        comp["system"] = round(sum(comp.get(k, 0.0) for k in ("workers", "postgres", "redis", "emulator")), 2)
        comp["harness"] = per_job(s1["harness"] - s0["harness"], n)
        comp["machine"] = result.machine_cpu_ms_per_job
        result.components = comp
        if result.variant != "noop":
            e0, e1 = s0["emulator_stats"], s1["emulator_stats"]
            result.checks["emulator_calls"] = e1["calls"] - e0["calls"]
            result.checks["emulator_cost"] = str(Decimal(e1["cost_total"]) - Decimal(e0["cost_total"]))
            result.checks["one_emulator_call_per_job"] = result.checks["emulator_calls"] == result.jobs

    def read_sql_counters(self, app, workers: list[Worker]) -> dict[str, int] | None:
        """Sum of every worker's bench_counters (bench/counted_app.py); None unless all answer."""
        replies = app.control.broadcast(
            "bench_counters", reply=True, destination=[w.name for w in workers], timeout=5.0
        )
        total: dict[str, int] = {}
        for reply in replies or []:
            for counts in reply.values():
                for k, v in counts.items():
                    total[k] = total.get(k, 0) + v
        return total if len(replies or []) == len(workers) else None

    # ----------------------------------------------------------------- one measured phase

    def run_phase(
        self,
        result: PhaseResult,
        *,
        app,
        app_module: str,
        queues: list[str],
        submit: Callable[[int, str], list[str]],
        verify: Callable[[list[str], dict, PhaseResult], dict] | None,
        count_sql: bool = False,
        extra_env: dict[str, str] | None = None,
    ) -> PhaseResult:
        args = self.args
        label = result.label
        say(f"\n-- {label}: {result.jobs} jobs, {result.procs} worker process(es), -P threads -c {result.concurrency}")
        purge_queues(self.redis_url, queues)
        workers = [
            Worker(app_module, queues, result.concurrency, self.worker_env() | (extra_env or {}), label=f"{label}-{i}")
            for i in range(result.procs)
        ]
        profilers: list[Profiler] = []
        s0 = s1 = None
        sql0 = sql1 = None
        metas: dict = {}
        result.revision = git_revision()
        for w in workers:
            w.start()
        try:
            wait_ready(app, workers)
            if args.warmup:
                warm = submit(args.warmup, "warmup")
                metas = wait_results(self.redis_url, warm, timeout=min(args.phase_timeout, 120), workers=workers)
                delete_results(self.redis_url, warm)
                if len(metas) < len(warm):
                    stuck = [j for j in warm if j not in metas]
                    say(f"   warm-up did not finish ({len(metas)}/{len(warm)}); stacks: {dump_stacks(workers, label)}")
                    result.checks.update(warmup_completed=False, warmup_unfinished=stuck[:20])
                    self.results.append(result)
                    return result
            if count_sql:
                sql0 = self.read_sql_counters(app, workers)
            for w in workers:
                w.pause()
            ids = submit(result.jobs, "measured")
            if args.profile:
                profilers = [Profiler(w.pid, LOG_DIR / f"profile-{label}-{i}.txt") for i, w in enumerate(workers)]
                time.sleep(1.0)  # py-spy attaches while the worker is still paused
            s0 = self.snapshot([w.pid for w in workers])
            t0 = time.time()
            for w in workers:
                w.resume()
            metas = wait_results(self.redis_url, ids, timeout=args.phase_timeout, progress=label, workers=workers)
            if len(metas) < len(ids):
                say(f"   {len(ids) - len(metas)} jobs unfinished; stacks: {dump_stacks(workers, label)}")
            s1 = self.snapshot([w.pid for w in workers])
            if count_sql:
                sql1 = self.read_sql_counters(app, workers)
        finally:
            for p in profilers:
                p.stop()
            for w in workers:
                w.stop()
        result.completed = len(metas)
        result.succeeded = sum(1 for m in metas.values() if m["status"] == "SUCCESS")
        if metas:
            result.wall_s = round(last_done(metas.values()) - t0, 3)
            result.jobs_per_s = round(result.completed / result.wall_s, 1) if result.wall_s > 0 else 0.0
        after = self.servers.sample() if self.servers else None
        self.account(result, s0, s1, after)
        if sql0 is not None and sql1 is not None:
            n = max(1, result.completed)
            result.sql = {k: per_job(v - sql0.get(k, 0), n, 1.0) for k, v in sorted(sql1.items())}
        elif count_sql:
            result.sql = {"unavailable": 1.0}
        result.checks["all_completed"] = result.completed == result.jobs
        result.checks["all_success"] = result.succeeded == result.jobs
        if verify is not None:
            result.checks.update(verify(ids, metas, result))
        result.ok = all(v for k, v in result.checks.items() if isinstance(v, bool))
        delete_results(self.redis_url, ids)
        if profilers:
            result.profile = summarize_profile([p.out for p in profilers], top=args.profile_top)
            print_profile(result.profile, label)
        self.say_phase(result)
        self.results.append(result)
        return result

    def say_phase(self, result: PhaseResult) -> None:
        comp = result.components
        say(
            f"   {result.completed}/{result.jobs} done in {result.wall_s:.2f}s: {result.jobs_per_s} jobs/s, "
            f"CPU ms/job workers {comp.get('workers')} postgres {comp.get('postgres', '-')} "
            f"redis {comp.get('redis', '-')} emulator {comp.get('emulator')} = {comp.get('system')} "
            f"(machine {comp.get('machine')}, busy {result.machine_busy_pct}%) "
            f"-> {'OK' if result.ok else 'CHECKS FAILED: ' + json.dumps(result.checks, default=str)}"
        )

    # ----------------------------------------------------------------- variants

    def baseline_app(self):
        from bench import baseline_app

        return baseline_app

    def noop(self, jobs: int) -> PhaseResult:
        base = self.baseline_app()

        def submit(n: int, tag: str) -> list[str]:
            with base.app.producer_or_acquire() as producer:
                return [
                    base.app.send_task("bench.noop", args=[i], queue=base.QUEUE, producer=producer).id for i in range(n)
                ]

        return self.run_phase(
            PhaseResult("noop", None, 1, self.args.concurrency, jobs),
            app=base.app,
            app_module="bench.baseline_app",
            queues=[base.QUEUE],
            submit=submit,
            verify=None,
        )

    def sdk_request(self) -> dict[str, Any]:
        """Exactly what the pipeline sends for an enterprise or professional script."""
        from config import get_catalog
        from config.prompts import script_messages

        tier = get_catalog().tier(PIPELINE_TIERS[0])
        return {
            "model": tier.models[0],
            "messages": script_messages(SCRIPT_TYPE, CONTENT),
            "max_tokens": tier.max_tokens,
            "temperature": tier.temperature,
        }

    def sdk(self, latency: float, procs: int, jobs: int) -> PhaseResult:
        base = self.baseline_app()
        request = self.sdk_request()

        def submit(n: int, tag: str) -> list[str]:
            with base.app.producer_or_acquire() as producer:
                return [
                    base.app.send_task("bench.sdk_chat", kwargs=request, queue=base.QUEUE, producer=producer).id
                    for _ in range(n)
                ]

        def verify(ids: list[str], metas: dict, result: PhaseResult) -> dict:
            contents = [m["result"]["content"] for m in metas.values() if m["status"] == "SUCCESS"]
            return {"all_have_content": len(contents) == len(ids) and all(contents)}

        return self.run_phase(
            PhaseResult("sdk", latency, procs, self.args.concurrency, jobs),
            app=base.app,
            app_module="bench.baseline_app",
            queues=[base.QUEUE],
            submit=submit,
            verify=verify,
        )

    def litellm(self, latency: float, jobs: int) -> PhaseResult:
        """A LiteLLM Router in its own process (bench/litellm_runner.py): same request, same
        concurrency, no queue and no database."""
        result = PhaseResult("litellm", latency, 1, self.args.concurrency, jobs)
        say(f"\n-- {result.label}: {jobs} calls, 1 process, asyncio with {result.concurrency} in flight")
        result.revision = git_revision()
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        stderr = open(LOG_DIR / f"{result.label}.log", "w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.litellm_runner"],
            cwd=ROOT,
            env=os.environ | self.worker_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            bufsize=1,
        )
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            for line in proc.stdout:
                lines.put(line.rstrip("\n"))
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()

        def expect(prefixes: tuple[str, ...], timeout: float) -> str | None:
            """The next protocol line (other output, e.g. a library's banner, is skipped)."""
            deadline = time.monotonic() + timeout
            while (left := deadline - time.monotonic()) > 0:
                try:
                    line = lines.get(timeout=left)
                except queue.Empty:
                    return None
                if line is None:
                    return None
                if line.startswith(prefixes):
                    return line
            return None

        def send(line: str) -> None:
            proc.stdin.write(line + "\n")
            proc.stdin.flush()

        try:
            send(
                json.dumps(
                    {
                        "base_url": self.emulator.base_url,
                        "api_key": "sk-or-bench-emulator",
                        "request": self.sdk_request(),
                        "concurrency": result.concurrency,
                        "warmup": self.args.warmup,
                        "jobs": jobs,
                    }
                )
            )
            ready = expect(("READY", "MISSING"), timeout=180)
            if ready is None:
                result.checks["runner_ready"] = False
                say(f"   the LiteLLM runner did not get ready; see {stderr.name}")
                self.results.append(result)
                return result
            if ready.startswith("MISSING"):
                result.skipped = (
                    f"litellm variant skipped: LiteLLM is not installed ({ready[len('MISSING ') :]}); "
                    "install the optional group with `.venv/bin/pip install -e '.[bench]'`"
                )
                say(f"   {result.skipped}")
                self.results.append(result)
                return result
            s0 = self.snapshot([proc.pid])
            send("GO")
            line = expect(("{",), timeout=self.args.phase_timeout)
            s1 = self.snapshot([proc.pid])
            send("EXIT")
        finally:
            with contextlib.suppress(OSError, ValueError):
                proc.stdin.close()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
            stderr.close()
        if line is None:
            result.checks["all_completed"] = False
            say(f"   the LiteLLM runner gave no result; see {LOG_DIR / (result.label + '.log')}")
            self.results.append(result)
            return result
        out = json.loads(line)
        result.completed = out["succeeded"]
        result.succeeded = out["succeeded"]
        result.wall_s = round(out["last_done"] - out["t0"], 3)
        result.jobs_per_s = round(result.completed / result.wall_s, 1) if result.wall_s > 0 else 0.0
        self.account(result, s0, s1, None)
        result.checks["all_completed"] = out["completed"] == jobs
        result.checks["all_success"] = out["succeeded"] == jobs
        result.checks["all_have_content"] = out["with_content"] == jobs
        result.checks["cost"] = out["cost_total"]
        result.checks["cost_equals_emulator"] = Decimal(out["cost_total"]) == Decimal(result.checks["emulator_cost"])
        if out["errors"]:
            result.checks["errors"] = out["errors"]
        result.ok = all(v for v in result.checks.values() if isinstance(v, bool))
        self.say_phase(result)
        self.results.append(result)
        return result

    def pipeline_users(self) -> list[str]:
        from db.session import transaction
        from workers.quotas.periods import utcnow
        from workers.quotas.subscriptions import set_tier

        users = [f"bench-{self.run_id}-{PIPELINE_TIERS[i % 2]}-{i}" for i in range(self.args.users)]
        with transaction() as conn:
            for i, user in enumerate(users):
                set_tier(conn, user, PIPELINE_TIERS[i % 2], now=utcnow(), source="operator")
        return users

    def pipeline(
        self, latency: float, procs: int, jobs: int, users: list[str], variant: str = "pipeline"
    ) -> PhaseResult:
        """``variant`` "pipeline-without-<a>+<b>" runs the same workers with the named speed-ups
        undone (``SPEEDUPS`` in bench/counted_app.py)."""
        from config import get_catalog
        from tasks.client import LitinkClient
        from workers.app import app

        client = LitinkClient(self.redis_url)
        counter = [0]

        def submit(n: int, tag: str) -> list[str]:
            ids = []
            with client.app.producer_or_acquire() as producer:
                for _ in range(n):
                    user = users[counter[0] % len(users)]
                    counter[0] += 1
                    ids.append(
                        client.app.send_task(
                            "litink.submit_script",
                            queue="intake",
                            producer=producer,
                            kwargs={
                                "user_id": user,
                                "content": CONTENT,
                                "script_type": SCRIPT_TYPE,
                                "idempotency_key": None,
                                "notify": None,
                            },
                        ).id
                    )
            return ids

        without = variant.removeprefix("pipeline-without-").replace("+", ",") if variant != "pipeline" else ""
        return self.run_phase(
            PhaseResult(variant, latency, procs, self.args.concurrency, jobs),
            app=app,
            app_module="bench.counted_app" if self.args.count_sql or without else "workers.app",
            extra_env={"BENCH_PIPELINE_WITHOUT": without} if without else None,
            queues=get_catalog().queues(),
            submit=submit,
            verify=verify_pipeline,
            count_sql=self.args.count_sql,
        )


def verify_pipeline(ids: list[str], metas: dict, result: PhaseResult | None = None) -> dict:
    """Every job final and succeeded (its JobResult and its jobs row), exactly one ok
    llm_calls row per job and none left pending or unknown, and the ledger's cost equal to
    what the emulator charged for the phase."""
    from sqlalchemy import text

    from db.session import get_engine

    statuses: dict[str, int] = {}
    for m in metas.values():
        s = m["result"]["status"] if m["status"] == "SUCCESS" and isinstance(m["result"], dict) else m["status"]
        statuses[s] = statuses.get(s, 0) + 1
    with get_engine().connect() as conn:
        calls = (
            conn.execute(
                text(
                    "SELECT count(*) FILTER (WHERE status = 'ok') AS ok_rows,"
                    " count(DISTINCT job_id) FILTER (WHERE status = 'ok') AS ok_jobs,"
                    " count(*) FILTER (WHERE status IN ('pending', 'unknown')) AS open_rows,"
                    " count(*) AS rows, coalesce(sum(cost_usd), 0) AS cost"
                    " FROM llm_calls WHERE job_id = ANY(:ids)"
                ),
                {"ids": ids},
            )
            .mappings()
            .one()
        )
        jobs_ok = conn.execute(
            text("SELECT count(*) FROM jobs WHERE id = ANY(:ids) AND status = 'succeeded'"), {"ids": ids}
        ).scalar()
    checks = {
        "job_results": statuses,
        "all_jobs_succeeded": statuses.get("succeeded", 0) == len(ids) and jobs_ok == len(ids),
        "one_ok_llm_call_per_job": calls["ok_rows"] == len(ids) and calls["ok_jobs"] == len(ids),
        "no_pending_llm_calls": calls["open_rows"] == 0,
        "llm_calls_rows": calls["rows"],
        "ledger_cost": str(calls["cost"]),
    }
    if result is not None and "emulator_cost" in result.checks:
        checks["cost_equals_emulator"] = Decimal(calls["cost"]) == Decimal(result.checks["emulator_cost"])
    return checks


# --------------------------------------------------------------------------- report

TARGETS = {
    # (latency ms, pipeline processes): minimum pipeline / sdk throughput
    (1000.0, 2): 1.0,
    (0.0, 2): 0.8,
}
SYSTEM_CPU_TARGET_MS = 10.0  # at 0 ms: workers + Postgres + Redis + emulator per job
REDIS_COMMANDS_TARGET = 2.0  # pipeline Redis commands per job / the sdk baseline's


def find(results: list[PhaseResult], variant: str, latency: float | None, procs: int | None = None):
    return next(
        (
            r
            for r in results
            if r.variant == variant
            and r.latency_ms == latency
            and (procs is None or r.procs == procs)
            and r.jobs_per_s
            and not r.skipped
        ),
        None,
    )


def ratios(results: list[PhaseResult]) -> list[dict[str, Any]]:
    """Every pipeline and litellm phase against the sdk baseline (1 process) and the
    pipeline against litellm, at the same latency."""
    out = []
    for r in results:
        if r.variant not in ("pipeline", "litellm") or not r.jobs_per_s:
            continue
        sdk = find(results, "sdk", r.latency_ms, 1) or find(results, "sdk", r.latency_ms)
        lite = find(results, "litellm", r.latency_ms) if r.variant == "pipeline" else None
        row: dict[str, Any] = {"variant": r.variant, "latency_ms": r.latency_ms, "procs": r.procs}
        if sdk:
            row["vs_sdk"] = round(r.jobs_per_s / sdk.jobs_per_s, 2)
            if sdk.worker_cpu_ms_per_job:
                row["worker_cpu_vs_sdk"] = round(r.worker_cpu_ms_per_job / sdk.worker_cpu_ms_per_job, 2)
            if sdk.components.get("system"):
                row["system_cpu_vs_sdk"] = round(r.components.get("system", 0) / sdk.components["system"], 2)
            sdk_cmds = sdk.servers.get("redis_commands_per_job")
            if sdk_cmds and r.servers.get("redis_commands_per_job"):
                row["redis_commands_vs_sdk"] = round(r.servers["redis_commands_per_job"] / sdk_cmds, 2)
        if lite:
            row["vs_litellm"] = round(r.jobs_per_s / lite.jobs_per_s, 2)
        out.append(row)
    return out


def targets(results: list[PhaseResult]) -> list[dict[str, Any]]:
    """The throughput targets (TARGETS), each met or not (or not measured in this run)."""
    out: list[dict[str, Any]] = []
    for (latency, procs), floor in TARGETS.items():
        p = find(results, "pipeline", latency, procs)
        sdk = find(results, "sdk", latency, 1)
        value = round(p.jobs_per_s / sdk.jobs_per_s, 2) if p and sdk else None
        out.append(
            {
                "target": f"pipeline {procs} procs at {latency:g} ms >= {floor}x sdk",
                "value": value,
                "met": None if value is None else value >= floor,
            }
        )
    p0 = find(results, "pipeline", 0.0, 2) or find(results, "pipeline", 0.0)
    system = p0.components.get("system") if p0 else None
    out.append(
        {
            "target": f"system CPU per job at 0 ms <= {SYSTEM_CPU_TARGET_MS:g} ms"
            + (f" (pipeline {p0.procs} procs: workers+postgres+redis+emulator)" if p0 else ""),
            "value": system,
            "met": None if system is None else system <= SYSTEM_CPU_TARGET_MS,
        }
    )
    if p0:
        out.append(
            {
                "target": f"machine CPU per job at 0 ms <= {SYSTEM_CPU_TARGET_MS:g} ms (whole machine, other load included)",
                "value": p0.machine_cpu_ms_per_job,
                "met": p0.machine_cpu_ms_per_job <= SYSTEM_CPU_TARGET_MS,
            }
        )
    for latency in sorted({r.latency_ms for r in results if r.latency_ms is not None}):
        p = find(results, "pipeline", latency, 2)
        lite = find(results, "litellm", latency)
        value = round(p.jobs_per_s / lite.jobs_per_s, 2) if p and lite else None
        out.append(
            {
                "target": f"pipeline 2 procs at {latency:g} ms ahead of litellm (>= 1.0x)",
                "value": value,
                "met": None if value is None else value >= 1.0,
            }
        )
    p = find(results, "pipeline", 0.0, 2) or find(results, "pipeline", 0.0)
    sdk = find(results, "sdk", 0.0, 1)
    if p and sdk and sdk.servers.get("redis_commands_per_job") and p.servers.get("redis_commands_per_job"):
        value = round(p.servers["redis_commands_per_job"] / sdk.servers["redis_commands_per_job"], 2)
        out.append(
            {
                "target": f"Redis commands per job <= {REDIS_COMMANDS_TARGET:g}x sdk (0 ms)",
                "value": value,
                "met": value <= REDIS_COMMANDS_TARGET,
            }
        )
    return out


def table(head: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(head)]
    say("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    say("  ".join("-" * w for w in widths))
    for row in rows:
        say("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def print_report(results: list[PhaseResult], rat: list[dict[str, Any]], tgt: list[dict[str, Any]]) -> None:
    measured = [r for r in results if not r.skipped]
    lat = lambda r: "-" if r.latency_ms is None else f"{r.latency_ms:g} ms"  # noqa: E731
    say("\nThroughput and CPU per job (ms of CPU per completed job)")
    table(
        [
            "variant",
            "latency",
            "procs",
            "done ok",
            "wall s",
            "jobs/s",
            "workers",
            "of it sys",
            "postgres",
            "redis",
            "emulator",
            "system",
            "pg server",
            "harness",
            "machine",
            "busy",
            "checks",
        ],
        [
            [
                r.variant,
                lat(r),
                str(r.procs),
                f"{r.succeeded}/{r.jobs}",
                f"{r.wall_s:.2f}",
                f"{r.jobs_per_s:.1f}",
                fmt(r.components.get("workers")),
                fmt(r.worker_sys_ms_per_job),
                fmt(r.components.get("postgres")),
                fmt(r.components.get("redis")),
                fmt(r.components.get("emulator")) if r.variant != "noop" else "-",
                fmt(r.components.get("system")),
                fmt(r.components.get("postgres_server")),
                fmt(r.components.get("harness")),
                fmt(r.components.get("machine")),
                f"{r.machine_busy_pct:.0f}%",
                "ok" if r.ok else "FAILED",
            ]
            for r in measured
        ],
    )
    say("  (workers = the worker or runner processes; postgres = the backends of the benchmark database;")
    say("   system = workers + postgres + redis + emulator; pg server = the whole Postgres server, other")
    say("   clients included; harness = this process; machine = /proc/stat, everything on the machine)")
    say("\nServer work per job")
    table(
        [
            "variant",
            "latency",
            "procs",
            "SQL stmts",
            "by kind",
            "commits",
            "pg xacts",
            "new sessions",
            "redis cmds",
            "redis clients built",
            "json enc/dec",
        ],
        [
            [
                r.variant,
                lat(r),
                str(r.procs),
                fmt(r.sql.get("statements")),
                " ".join(f"{k.split(':', 1)[1]}={v:g}" for k, v in r.sql.items() if k.startswith("statement:")) or "-",
                fmt(r.sql.get("commits")),
                fmt(r.servers.get("pg_transactions_per_job")),
                fmt(r.servers.get("pg_new_sessions")),
                fmt(r.servers.get("redis_commands_per_job")),
                fmt(r.sql.get("redis_clients_built")),
                f"{fmt(r.sql.get('json_encodes'))}/{fmt(r.sql.get('json_decodes'))}" if r.sql else "-",
            ]
            for r in measured
        ],
    )
    say("\nRedis commands per job, by command (INFO commandstats; the harness's own polling is in mget/info)")
    for r in measured:
        if r.redis_commands:
            say(f"  {r.label:<22} " + " ".join(f"{k}={v:g}" for k, v in r.redis_commands.items() if v >= 0.05))
    if rat:
        say("\nRatios (same latency; sdk = 1 worker process)")
        table(
            [
                "variant",
                "latency",
                "procs",
                "jobs/s vs sdk",
                "vs litellm",
                "worker CPU vs sdk",
                "system CPU vs sdk",
                "redis cmds vs sdk",
            ],
            [
                [
                    x["variant"],
                    f"{x['latency_ms']:g} ms",
                    str(x["procs"]),
                    fmt(x.get("vs_sdk")),
                    fmt(x.get("vs_litellm")),
                    fmt(x.get("worker_cpu_vs_sdk")),
                    fmt(x.get("system_cpu_vs_sdk")),
                    fmt(x.get("redis_commands_vs_sdk")),
                ]
                for x in rat
            ],
        )
    say("\nTargets")
    for t in tgt:
        verdict = "not measured" if t["met"] is None else ("met" if t["met"] else "NOT MET")
        say(f"  {t['target']}: {fmt(t['value'])} -> {verdict}")
    for r in results:
        if r.skipped:
            say(f"\nNOTE: {r.skipped}")


def parse_list(text: str, kind=float) -> list:
    return [kind(x) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.throughput", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="measured jobs per phase (default: 1500 at 0 ms latency and for noop, 2000 otherwise)",
    )
    p.add_argument("--latency", default="0,1000", help="emulator latencies in ms, comma separated (default 0,1000)")
    p.add_argument(
        "--worker-procs", default=None, help="pipeline worker processes to try (default 1,2; 1 with --profile)"
    )
    p.add_argument("--sdk-procs", default="1", help="sdk baseline worker processes (default 1)")
    p.add_argument("--concurrency", type=int, default=200, help="threads per worker process (default 200)")
    p.add_argument("--variants", default=None, help="noop,sdk,litellm,pipeline (default all; pipeline with --profile)")
    p.add_argument(
        "--redis",
        choices=("private", "env"),
        default="private",
        help="private: a redis-server of the benchmark's own (exact Redis CPU and commands); env: REDIS_URL",
    )
    p.add_argument(
        "--no-count-sql",
        dest="count_sql",
        action="store_false",
        help="run the pipeline as workers.app, without bench/counted_app.py's statement counters",
    )
    p.add_argument("--users", type=int, default=400, help="distinct pipeline users, half enterprise, half professional")
    p.add_argument("--warmup", type=int, default=100, help="unmeasured jobs per phase before the measured batch")
    p.add_argument("--phase-timeout", type=float, default=300, help="seconds to wait for one phase's jobs")
    p.add_argument(
        "--log-level", default=None, help="LOG_LEVEL for the pipeline workers (default: the project's default, INFO)"
    )
    p.add_argument("--json", dest="json_out", default=None, help="also write the results as JSON to this file")
    p.add_argument("--profile", action="store_true", help="run py-spy on the workers and print the top CPU consumers")
    p.add_argument("--profile-top", type=int, default=25)
    args = p.parse_args(argv)
    variants = parse_list(args.variants or ("pipeline" if args.profile else "noop,sdk,litellm,pipeline"), str)
    latencies = parse_list(args.latency)
    procs_list = parse_list(args.worker_procs or ("1" if args.profile else "1,2"), int)
    sdk_procs = parse_list(args.sdk_procs, int)

    bench = Bench(args)
    started = datetime.now(UTC)
    say(
        f"bench.throughput run {bench.run_id} at {git_revision()}: {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, "
        f"variants {variants}, latencies {latencies} ms, pipeline processes {procs_list}"
    )
    try:
        bench.setup()
        users = bench.pipeline_users() if any(v.startswith("pipeline") for v in variants) else []
        if "noop" in variants:
            bench.noop(args.jobs or DEFAULT_JOBS[0])
        for latency in latencies:
            jobs = args.jobs or DEFAULT_JOBS.get(int(latency), DEFAULT_JOBS_OTHER)
            bench.emulator.control.set_latency(latency)
            if "sdk" in variants:
                for procs in sdk_procs:
                    bench.sdk(latency, procs, jobs)
            if "litellm" in variants:
                bench.litellm(latency, jobs)
            for variant in (v for v in variants if v.startswith("pipeline")):
                for procs in procs_list:
                    bench.pipeline(latency, procs, jobs, users, variant)
    finally:
        bench.stop()
    finished = datetime.now(UTC)
    rat = ratios(bench.results)
    tgt = targets(bench.results)
    print_report(bench.results, rat, tgt)
    revisions = sorted({r.revision for r in bench.results})
    if not same_code(revisions):
        say(f"\nWARNING: the code changed during the run ({'; '.join(revisions)}): phases are not comparable")
    say(f"\n(run {bench.run_id}, {started:%Y-%m-%d %H:%M} to {finished:%H:%M} UTC; logs and profiles in {LOG_DIR})")
    if args.json_out:
        out = {
            "run": bench.run_id,
            "started": started.isoformat(),
            "finished": finished.isoformat(),
            "command": "python -m bench.throughput " + " ".join(argv if argv is not None else sys.argv[1:]),
            "revision": git_revision(),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
            "results": [asdict(r) for r in bench.results],
            "postgres_max_connections": bench.max_connections,
            "redis": args.redis,
            "ratios": rat,
            "targets": tgt,
        }
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(out, indent=2, default=str))
        say(f"JSON written to {args.json_out}")
    return 0 if all(r.ok for r in bench.results if not r.skipped) else 1


if __name__ == "__main__":
    sys.exit(main())
