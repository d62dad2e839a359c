"""Throughput and CPU per job: the Litink pipeline against a bare Celery + openai SDK baseline.

    python -m bench.throughput [--jobs N] [--latency 0,1000] [--worker-procs 1,2]
                               [--concurrency 200] [--json out.json] [--profile]

Variants, each measured in the same run on the same machine:

- noop:     bare Celery no-op tasks (bench/baseline_app.py), one worker process;
- sdk:      bare Celery tasks that make the same chat completion with the openai SDK against
            the emulator; no intake, no database. The baseline the targets are ratios of;
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
the workers'; it is reported separately, as is the whole machine's CPU (Redis, Postgres,
the emulator and anything else running) per job.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import (
    LOG_DIR,
    Emulator,
    Profiler,
    Worker,
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
    servers: dict[str, float] = field(default_factory=dict)
    checks: dict[str, Any] = field(default_factory=dict)
    revision: str = ""  # the code the workers loaded (others may commit during a run)
    ok: bool = False
    profile: dict[str, Any] | None = None


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.database_url, self.redis_url = configure_environment()
        self.run_id = uuid.uuid4().hex[:6]
        self.emulator: Emulator | None = None
        self.results: list[PhaseResult] = []

    # ----------------------------------------------------------------- set-up

    def setup(self) -> None:
        ensure_database(self.database_url)
        self.servers = server_cpu_or_none(self.database_url, self.redis_url)
        self.emulator = Emulator(latency_ms=0)
        os.environ["OPENROUTER_BASE_URL"] = self.emulator.base_url
        os.environ["OPENROUTER_API_KEY"] = "sk-or-bench-emulator"
        say(f"Postgres {self.database_url} | Redis {self.redis_url} | emulator {self.emulator.base_url} (own process)")

    def worker_env(self) -> dict[str, str]:
        env = {
            "OPENROUTER_BASE_URL": self.emulator.base_url,
            "OPENROUTER_API_KEY": "sk-or-bench-emulator",
            "METRICS_PORT": "0",
            "PYTHONUNBUFFERED": "1",
        }
        if self.args.log_level:
            env["LOG_LEVEL"] = self.args.log_level
        return env

    # ----------------------------------------------------------------- one measured phase

    def run_phase(
        self,
        result: PhaseResult,
        *,
        app,
        app_module: str,
        queues: list[str],
        submit: Callable[[int, str], list[str]],
        verify: Callable[[list[str], dict], dict] | None,
    ) -> PhaseResult:
        args = self.args
        label = (
            f"{result.variant}-{result.procs}p"
            if result.latency_ms is None
            else f"{result.variant}-{int(result.latency_ms)}ms-{result.procs}p"
        )
        say(f"\n-- {label}: {result.jobs} jobs, {result.procs} worker process(es), -P threads -c {result.concurrency}")
        purge_queues(self.redis_url, queues)
        workers = [
            Worker(app_module, queues, result.concurrency, self.worker_env(), label=f"{label}-{i}")
            for i in range(result.procs)
        ]
        profilers: list[Profiler] = []
        srv0 = srv_end = None
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
            for w in workers:
                w.pause()
            ids = submit(result.jobs, "measured")
            if args.profile:
                profilers = [Profiler(w.pid, LOG_DIR / f"profile-{label}-{i}.txt") for i, w in enumerate(workers)]
                time.sleep(1.0)  # py-spy attaches while the worker is still paused
            emu_calls0 = self.emulator.control.stats()["calls"] if result.variant != "noop" else 0
            cpu0 = [w.cpu() for w in workers]
            sys0 = [proc_user_sys(w.pid)[1] for w in workers]
            emu0 = self.emulator.cpu()
            busy0, total0 = machine_cpu()
            srv0 = self.servers.sample() if self.servers else None
            t0 = time.time()
            for w in workers:
                w.resume()
            metas = wait_results(self.redis_url, ids, timeout=args.phase_timeout, progress=label, workers=workers)
            if len(metas) < len(ids):
                say(f"   {len(ids) - len(metas)} jobs unfinished; stacks: {dump_stacks(workers, label)}")
            cpu1 = [w.cpu() for w in workers]
            sys1 = [proc_user_sys(w.pid)[1] for w in workers]
            emu1 = self.emulator.cpu()
            busy1, total1 = machine_cpu()
            srv_end = self.servers.sample() if self.servers else None
        finally:
            for p in profilers:
                p.stop()
            for w in workers:
                w.stop()
        if srv0 is not None:
            # CPU up to the last completion; counters once the workers stopped (their backends flushed statistics)
            srv1 = self.servers.sample()
            result.servers = {
                "postgres_cpu_ms_per_job": round(
                    1000 * (srv_end["postgres_cpu"] - srv0["postgres_cpu"]) / max(1, len(metas)), 2
                ),
                "redis_cpu_ms_per_job": round(
                    1000 * (srv_end["redis_cpu"] - srv0["redis_cpu"]) / max(1, len(metas)), 2
                ),
                "pg_transactions_per_job": round((srv1["pg_xacts"] - srv0["pg_xacts"]) / max(1, len(metas)), 2),
                "pg_new_sessions": int(srv1["pg_sessions"] - srv0["pg_sessions"]),
                "redis_commands_per_job": round(
                    (srv1["redis_commands"] - srv0["redis_commands"]) / max(1, len(metas)), 1
                ),
            }
        result.completed = len(metas)
        result.succeeded = sum(1 for m in metas.values() if m["status"] == "SUCCESS")
        n = max(1, result.completed)
        if metas:
            result.wall_s = round(last_done(metas.values()) - t0, 3)
            result.jobs_per_s = round(result.completed / result.wall_s, 1) if result.wall_s > 0 else 0.0
        result.worker_cpu_ms_per_job = round(1000 * sum(b - a for a, b in zip(cpu0, cpu1, strict=False)) / n, 2)
        result.worker_sys_ms_per_job = round(1000 * sum(b - a for a, b in zip(sys0, sys1, strict=False)) / n, 2)
        if result.variant != "noop":
            result.emulator_cpu_ms_per_job = round(1000 * (emu1 - emu0) / n, 2)
            result.checks["emulator_calls"] = self.emulator.control.stats()["calls"] - emu_calls0
        result.machine_cpu_ms_per_job = round(1000 * (busy1 - busy0) / n, 2)
        result.machine_busy_pct = round(100 * (busy1 - busy0) / max(1e-9, total1 - total0), 1)
        result.checks["all_completed"] = result.completed == result.jobs
        result.checks["all_success"] = result.succeeded == result.jobs
        if verify is not None:
            result.checks.update(verify(ids, metas))
        result.ok = all(v for k, v in result.checks.items() if isinstance(v, bool))
        if result.variant != "noop" and result.checks.get("emulator_calls") != result.jobs:
            result.ok = False
        delete_results(self.redis_url, ids)
        if profilers:
            result.profile = summarize_profile([p.out for p in profilers], top=args.profile_top)
            print_profile(result.profile, label)
        say(
            f"   {result.completed}/{result.jobs} done in {result.wall_s:.2f}s: {result.jobs_per_s} jobs/s, "
            f"worker CPU {result.worker_cpu_ms_per_job} ms/job, machine busy {result.machine_busy_pct}% "
            f"-> {'OK' if result.ok else 'CHECKS FAILED: ' + json.dumps(result.checks)}"
        )
        self.results.append(result)
        return result

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

        def verify(ids: list[str], metas: dict) -> dict:
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

    def pipeline_users(self) -> list[str]:
        from db.session import transaction
        from workers.quotas.periods import utcnow
        from workers.quotas.subscriptions import set_tier

        users = [f"bench-{self.run_id}-{PIPELINE_TIERS[i % 2]}-{i}" for i in range(self.args.users)]
        with transaction() as conn:
            for i, user in enumerate(users):
                set_tier(conn, user, PIPELINE_TIERS[i % 2], now=utcnow(), source="operator")
        return users

    def pipeline(self, latency: float, procs: int, jobs: int, users: list[str]) -> PhaseResult:
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

        return self.run_phase(
            PhaseResult("pipeline", latency, procs, self.args.concurrency, jobs),
            app=app,
            app_module="workers.app",
            queues=get_catalog().queues(),
            submit=submit,
            verify=verify_pipeline,
        )


def verify_pipeline(ids: list[str], metas: dict) -> dict:
    """Every job succeeded, and llm_calls holds exactly one ok row per job."""
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
                    " count(DISTINCT job_id) FILTER (WHERE status = 'ok') AS ok_jobs, count(*) AS rows"
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
    return {
        "job_results": statuses,
        "all_jobs_succeeded": statuses.get("succeeded", 0) == len(ids) and jobs_ok == len(ids),
        "one_ok_llm_call_per_job": calls["ok_rows"] == len(ids) and calls["ok_jobs"] == len(ids),
        "llm_calls_rows": calls["rows"],
    }


# --------------------------------------------------------------------------- report


def ratios(results: list[PhaseResult]) -> list[dict[str, Any]]:
    out = []
    for r in results:
        if r.variant != "pipeline":
            continue
        base = next((b for b in results if b.variant == "sdk" and b.latency_ms == r.latency_ms), None)
        if base is None or not base.jobs_per_s:
            continue
        out.append(
            {
                "latency_ms": r.latency_ms,
                "procs": r.procs,
                "throughput_ratio": round(r.jobs_per_s / base.jobs_per_s, 2),
                "cpu_ratio": round(r.worker_cpu_ms_per_job / base.worker_cpu_ms_per_job, 2)
                if base.worker_cpu_ms_per_job
                else None,
                "target": 1.0 if r.latency_ms and r.latency_ms >= 1000 else 0.8,
            }
        )
    return out


def print_report(results: list[PhaseResult], rat: list[dict[str, Any]]) -> None:
    head = [
        "variant",
        "latency",
        "procs",
        "jobs",
        "done ok",
        "wall s",
        "jobs/s",
        "worker CPU ms/job",
        "of it sys",
        "emulator ms/job",
        "machine CPU ms/job",
        "machine busy",
        "checks",
    ]
    rows = []
    for r in results:
        rows.append(
            [
                r.variant,
                "-" if r.latency_ms is None else f"{r.latency_ms:g} ms",
                str(r.procs),
                str(r.jobs),
                f"{r.succeeded}/{r.jobs}",
                f"{r.wall_s:.2f}",
                f"{r.jobs_per_s:.1f}",
                f"{r.worker_cpu_ms_per_job:.2f}",
                f"{r.worker_sys_ms_per_job:.2f}",
                "-" if r.emulator_cpu_ms_per_job is None else f"{r.emulator_cpu_ms_per_job:.2f}",
                f"{r.machine_cpu_ms_per_job:.2f}",
                f"{r.machine_busy_pct:.0f}%",
                "ok" if r.ok else "FAILED",
            ]
        )
    widths = (
        [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)] if rows else [len(h) for h in head]
    )
    say("\n" + "  ".join(h.ljust(w) for h, w in zip(head, widths, strict=False)))
    say("  ".join("-" * w for w in widths))
    for row in rows:
        say("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)))
    server_rows = [r for r in results if r.servers]
    if server_rows:
        say("\nServers during each phase (Postgres and Redis serve the whole machine: other clients count too)")
        say(
            "  variant   latency  procs  postgres CPU ms/job  redis CPU ms/job  pg xacts/job  pg new sessions  redis cmds/job"
        )
        for r in server_rows:
            s = r.servers
            say(
                f"  {r.variant:<9} {'-' if r.latency_ms is None else f'{r.latency_ms:g} ms':<8} {r.procs:<6} "
                f"{s['postgres_cpu_ms_per_job']:<20} {s['redis_cpu_ms_per_job']:<17} {s['pg_transactions_per_job']:<13} "
                f"{s['pg_new_sessions']:<16} {s['redis_commands_per_job']}"
            )
    if rat:
        say("\npipeline / sdk (same latency; sdk = 1 worker process)")
        for x in rat:
            verdict = "meets" if x["throughput_ratio"] >= x["target"] else "BELOW"
            say(
                f"  {x['latency_ms']:g} ms, {x['procs']} worker process(es): throughput {x['throughput_ratio']:.2f}x "
                f"(target >= {x['target']}x: {verdict}), worker CPU per job {x['cpu_ratio']}x"
            )


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
    p.add_argument("--variants", default=None, help="noop,sdk,pipeline (default all; pipeline with --profile)")
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
    variants = parse_list(args.variants or ("pipeline" if args.profile else "noop,sdk,pipeline"), str)
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
    bench.setup()
    try:
        users = bench.pipeline_users() if "pipeline" in variants else []
        if "noop" in variants:
            bench.noop(args.jobs or DEFAULT_JOBS[0])
        for latency in latencies:
            jobs = args.jobs or DEFAULT_JOBS.get(int(latency), DEFAULT_JOBS_OTHER)
            bench.emulator.control.set_latency(latency)
            if "sdk" in variants:
                for procs in sdk_procs:
                    bench.sdk(latency, procs, jobs)
            if "pipeline" in variants:
                for procs in procs_list:
                    bench.pipeline(latency, procs, jobs, users)
    finally:
        bench.emulator.stop()
    finished = datetime.now(UTC)
    rat = ratios(bench.results)
    print_report(bench.results, rat)
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
            "ratios": rat,
        }
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(out, indent=2, default=str))
        say(f"JSON written to {args.json_out}")
    return 0 if all(r.ok for r in bench.results) else 1


if __name__ == "__main__":
    sys.exit(main())
