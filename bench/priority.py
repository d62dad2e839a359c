"""Tier priority under a free-tier flood: how long do professional jobs wait?

    python -m bench.priority [--free 2000] [--pro 50] [--latency 200] [--concurrency 20]
                             [--procs 1] [--pro-interval 0.1] [--pro-start after-intake|immediately]
                             [--json out.json]

1. Start the emulator (own process, --latency ms per call) and worker process(es) consuming
   every queue like the Procfile's `worker` (`-P threads -c <concurrency>`), small enough
   that a real backlog forms.
2. Submit --free jobs at once, one per distinct free-tier user (free allows 2 scripts a month
   and 10 requests a minute per user).
3. --pro-start after-intake (default): wait until every free job has passed intake, i.e. the
   backlog sits in `tier.free` (and the workers are busy with it). --pro-start immediately:
   do not wait; the professional jobs then also queue behind the free jobs' intake messages.
4. Submit --pro professional jobs (distinct professional users), one every --pro-interval s.
5. Wait for every job; a job's queue wait = its tier task's start (`jobs.started_at`, set
   when the tier task claims the job) - the producer's submit time. Also reported: the wait
   in the tier queue alone (`started_at - created_at`, created_at being written at intake).

Reports p50/p95/max of the professional and the free waits and professional p95 / free p95
(target: under 2%), checks that the free backlog outlived the last professional start (so
every professional job really arrived into a backlog), and that every job succeeded with one
ok llm_calls row.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from bench.common import (
    LOG_DIR,
    Emulator,
    Worker,
    configure_environment,
    delete_results,
    ensure_database,
    git_revision,
    percentile,
    purge_queues,
    say,
    wait_ready,
    wait_results,
)
from bench.throughput import CONTENT, SCRIPT_TYPE, verify_pipeline


def stats(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": round(percentile(values, 50), 3),
        "p95": round(percentile(values, 95), 3),
        "max": round(max(values), 3) if values else float("nan"),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.priority", description=__doc__.split("\n\n")[0])
    p.add_argument("--free", type=int, default=2000, help="free-tier jobs in the flood (one per user)")
    p.add_argument("--pro", type=int, default=50, help="professional jobs submitted into the backlog")
    p.add_argument("--latency", type=float, default=200, help="emulator latency per call, ms (default 200)")
    p.add_argument("--concurrency", type=int, default=20, help="threads per worker process (default 20)")
    p.add_argument("--procs", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--pro-interval", type=float, default=0.1, help="seconds between professional submits")
    p.add_argument("--pro-start", choices=("after-intake", "immediately"), default="after-intake")
    p.add_argument("--timeout", type=float, default=600, help="seconds to wait for all jobs")
    p.add_argument("--json", dest="json_out", default=None)
    args = p.parse_args(argv)

    database_url, redis_url = configure_environment()
    ensure_database(database_url)
    run = uuid.uuid4().hex[:6]
    started = datetime.now(UTC)
    say(
        f"bench.priority run {run} at {git_revision()}: {args.free} free jobs, then {args.pro} professional jobs every "
        f"{args.pro_interval}s ({args.pro_start}); emulator {args.latency:g} ms; {args.procs} worker process(es) "
        f"-P threads -c {args.concurrency}; {os.cpu_count()} CPUs"
    )

    from sqlalchemy import text

    from config import get_catalog
    from db.session import get_engine, transaction
    from tasks.client import LitinkClient
    from workers.app import app
    from workers.quotas.periods import utcnow
    from workers.quotas.subscriptions import set_tier

    free_users = [f"bench-{run}-free-{i}" for i in range(args.free)]  # no subscription row: the default tier
    pro_users = [f"bench-{run}-pro-{i}" for i in range(args.pro)]
    with transaction() as conn:
        for user in pro_users:
            set_tier(conn, user, "professional", now=utcnow(), source="operator")
    assert get_catalog().default.name == "free"

    emulator = Emulator(latency_ms=args.latency)
    queues = get_catalog().queues()
    purge_queues(redis_url, queues)
    env = {"OPENROUTER_BASE_URL": emulator.base_url, "OPENROUTER_API_KEY": "sk-or-bench-emulator", "METRICS_PORT": "0"}
    workers = [Worker("workers.app", queues, args.concurrency, env, label=f"priority-{i}") for i in range(args.procs)]
    client = LitinkClient(redis_url)
    submitted: dict[str, float] = {}
    free_ids: list[str] = []
    pro_ids: list[str] = []

    def submit(user: str, producer) -> str:
        job_id = str(uuid.uuid4())
        submitted[job_id] = time.time()
        client.app.send_task(
            "litink.submit_script",
            task_id=job_id,
            queue="intake",
            producer=producer,
            kwargs={
                "user_id": user,
                "content": CONTENT,
                "script_type": SCRIPT_TYPE,
                "idempotency_key": None,
                "notify": None,
            },
        )
        return job_id

    backlog_at_first_pro = None
    try:
        for w in workers:
            w.start()
        wait_ready(app, workers)
        say("workers ready; submitting the free flood")
        with client.app.producer_or_acquire() as producer:
            free_ids = [submit(u, producer) for u in free_users]
        deadline = time.monotonic() + args.timeout
        if args.pro_start == "after-intake":
            while True:
                with get_engine().connect() as conn:
                    admitted = conn.execute(
                        text("SELECT count(*) FROM jobs WHERE id = ANY(:ids)"), {"ids": free_ids}
                    ).scalar()
                if admitted >= len(free_ids) or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            say(f"{admitted} free jobs past intake")
        with get_engine().connect() as conn:
            backlog_at_first_pro = conn.execute(
                text(
                    "SELECT count(*) FILTER (WHERE status = 'queued'), count(*) FILTER (WHERE status = 'running'),"
                    " count(*) FILTER (WHERE status IN ('succeeded', 'failed', 'rejected'))"
                    " FROM jobs WHERE id = ANY(:ids)"
                ),
                {"ids": free_ids},
            ).one()
        say(
            f"at the first professional submit: free jobs queued {backlog_at_first_pro[0]}, running "
            f"{backlog_at_first_pro[1]}, finished {backlog_at_first_pro[2]} (not yet admitted: "
            f"{len(free_ids) - sum(backlog_at_first_pro)})"
        )
        with client.app.producer_or_acquire() as producer:
            for user in pro_users:
                pro_ids.append(submit(user, producer))
                time.sleep(args.pro_interval)
        say("professional jobs submitted; waiting for every job")
        all_ids = free_ids + pro_ids
        metas = wait_results(
            redis_url,
            all_ids,
            timeout=max(10.0, deadline - time.monotonic()),
            poll=0.5,
            progress="all jobs",
            workers=workers,
        )
    finally:
        for w in workers:
            w.stop()
        emulator.stop()

    checks = verify_pipeline(all_ids, metas)
    checks["all_completed"] = len(metas) == len(all_ids)
    with get_engine().connect() as conn:
        rows = conn.execute(
            text("SELECT id, tier, created_at, started_at FROM jobs WHERE id = ANY(:ids)"), {"ids": all_ids}
        ).all()
    delete_results(redis_url, all_ids)
    by_id = {r.id: r for r in rows}
    waits = {"free": [], "professional": []}
    tier_waits = {"free": [], "professional": []}
    wrong_tier = 0
    for ids, tier in ((free_ids, "free"), (pro_ids, "professional")):
        for job_id in ids:
            row = by_id.get(job_id)
            if row is None or row.started_at is None:
                continue
            wrong_tier += row.tier != tier
            waits[tier].append(row.started_at.timestamp() - submitted[job_id])
            tier_waits[tier].append((row.started_at - row.created_at).total_seconds())
    free_starts = [by_id[j].started_at.timestamp() for j in free_ids if j in by_id and by_id[j].started_at]
    pro_starts = [by_id[j].started_at.timestamp() for j in pro_ids if j in by_id and by_id[j].started_at]
    checks["every_job_on_its_tier"] = wrong_tier == 0
    checks["free_backlog_outlived_last_pro_start"] = bool(
        free_starts and pro_starts and max(free_starts) > max(pro_starts)
    )
    free, pro = stats(waits["free"]), stats(waits["professional"])
    ratio = pro["p95"] / free["p95"] if free["p95"] else float("nan")
    report = {
        "run": run,
        "started": started.isoformat(),
        "finished": datetime.now(UTC).isoformat(),
        "command": "python -m bench.priority " + " ".join(argv if argv is not None else sys.argv[1:]),
        "revision": git_revision(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "settings": vars(args),
        "free_backlog_at_first_pro": {
            "queued": backlog_at_first_pro[0],
            "running": backlog_at_first_pro[1],
            "finished": backlog_at_first_pro[2],
        }
        if backlog_at_first_pro
        else None,
        "wait_s": {"free": free, "professional": pro},
        "tier_queue_wait_s": {"free": stats(tier_waits["free"]), "professional": stats(tier_waits["professional"])},
        "pro_p95_over_free_p95": round(ratio, 5),
        "free_drain_s": round(max(free_starts) - min(submitted[j] for j in free_ids), 2) if free_starts else None,
        "checks": checks,
    }
    ok = all(v for v in checks.values() if isinstance(v, bool))
    say("\nqueue wait = tier task start - submit (seconds)")
    say(f"  {'':14} {'n':>5} {'p50':>9} {'p95':>9} {'max':>9}    tier queue only: p50 / p95")
    for tier, s in (("free", free), ("professional", pro)):
        t = report["tier_queue_wait_s"][tier]
        say(
            f"  {tier:14} {s['n']:>5} {s['p50']:>9.3f} {s['p95']:>9.3f} {s['max']:>9.3f}    {t['p50']:.3f} / {t['p95']:.3f}"
        )
    say(f"\nprofessional p95 / free p95 = {100 * ratio:.2f}% (target < 2%: {'meets' if ratio < 0.02 else 'MISSES'})")
    say(
        f"free flood drained in {report['free_drain_s']} s after its first submit; checks: "
        f"{'ok' if ok else 'FAILED ' + json.dumps(checks)}"
    )
    say(f"(run {run}; worker logs in {LOG_DIR})")
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(report, indent=2, default=str))
        say(f"JSON written to {args.json_out}")
    return 0 if ok else 1  # a missed target is reported, not an error


if __name__ == "__main__":
    sys.exit(main())
