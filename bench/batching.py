"""Five analyses of one chapter: one batched job against five separate jobs (cost and calls).

    python -m bench.batching [--tiers premium,free] [--chapters 3] [--latency 200] [--json out.json]

For each tier and each chapter (distinct text per run, so the response cache never answers):
- batched: one ``litink.submit_analysis`` with ``analysis_type`` = the five types;
- separate: five ``litink.submit_analysis`` jobs, one per type, submitted together.
Reports per tier: provider calls (the emulator's call log and ``llm_calls``), prompt and
completion tokens, cost (``jobs.cost_usd``, exact decimals) and wall time, batched vs separate.
A tier whose primary model has no structured outputs (free: llama-3.2-3b) shows the per-type
fallback: its first batched job pays for one unusable batched answer, after which the model is
remembered (workers/llm/capabilities.py) and batches on it go straight to one call per type.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from decimal import Decimal
from typing import Any

from bench.common import (
    Emulator,
    Worker,
    configure_environment,
    ensure_database,
    git_revision,
    purge_queues,
    redis_client,
    say,
    wait_ready,
    wait_results,
)

TYPES = ["summary", "keywords", "difficulty", "genre", "characters"]
PARAGRAPH = (
    "Mara kept the harbour ledger the winter her brother sailed north. Each dusk she climbed the sea wall, "
    "counted the boats against the grey, and wrote the number beside the weather. The old keeper, Tomas, "
    "told her the sea returns what it borrows, though rarely on time. "
)


def chapter(run: str, index: int) -> str:
    # About 2900 characters: under the 3000 an analysis reads, so no preprocessing is mixed in.
    return f"Chapter {index} ({run}).\n\n" + "\n\n".join(PARAGRAPH for _ in range(9))


def measure(db_url: str, job_ids: list[str]) -> dict[str, Any]:
    from sqlalchemy import text

    from db.session import get_engine

    with get_engine(db_url).connect() as conn:
        jobs = conn.execute(
            text(
                "SELECT count(*) AS jobs, count(*) FILTER (WHERE status = 'succeeded') AS ok, sum(cost_usd) AS cost,"
                " sum(prompt_tokens) AS p, sum(completion_tokens) AS c,"
                " extract(epoch FROM max(finished_at) - min(created_at)) AS wall FROM jobs WHERE id = ANY(:ids)"
            ),
            {"ids": job_ids},
        ).one()
        calls = conn.execute(
            text("SELECT count(*) FROM llm_calls WHERE job_id = ANY(:ids) AND status <> 'cache_hit'"), {"ids": job_ids}
        ).scalar()
    return {
        "jobs": jobs.jobs,
        "succeeded": jobs.ok,
        "provider_calls": calls,
        "prompt_tokens": int(jobs.p or 0),
        "completion_tokens": int(jobs.c or 0),
        "cost_usd": format(jobs.cost or Decimal(0), "f"),
        "wall_s": round(float(jobs.wall or 0), 3),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.batching", description=__doc__.split("\n\n")[0])
    p.add_argument("--tiers", default="premium,free", help="comma-separated tiers (default premium,free)")
    p.add_argument("--chapters", type=int, default=3, help="chapters per tier (default 3)")
    p.add_argument("--latency", type=float, default=200, help="emulator latency per call, ms (default 200)")
    p.add_argument("--timeout", type=float, default=300)
    p.add_argument("--json", dest="json_out", default=None)
    args = p.parse_args(argv)

    database_url, redis_url = configure_environment()
    ensure_database(database_url)
    run = uuid.uuid4().hex[:6]
    say(f"bench.batching run {run} at {git_revision()}: {args.chapters} chapters x tiers {args.tiers}")

    from config import get_catalog
    from db.session import transaction
    from tasks.client import LitinkClient
    from workers.app import app
    from workers.quotas.periods import utcnow
    from workers.quotas.subscriptions import set_tier

    emulator = Emulator(latency_ms=args.latency)
    queues = get_catalog().queues()
    purge_queues(redis_url, queues)
    env = {"OPENROUTER_BASE_URL": emulator.base_url, "OPENROUTER_API_KEY": "sk-or-bench-emulator", "METRICS_PORT": "0"}
    worker = Worker("workers.app", queues, 20, env, label="batching")
    client = LitinkClient(redis_url)
    from workers.llm.capabilities import KEY_PREFIX

    for tier in args.tiers.split(","):  # start from a clean memory of what models cannot do
        redis_client(redis_url).delete(KEY_PREFIX + get_catalog().tier(tier).models[0])
    report: dict[str, Any] = {"run": run, "revision": git_revision(), "tiers": {}}
    try:
        worker.start()
        wait_ready(app, [worker])
        for tier in args.tiers.split(","):
            # One user per chapter and mode: the free tier allows 10 requests a minute per user.
            users = {
                (m, i): f"bench-{run}-{tier}-{m}-{i}" for m in ("batched", "separate") for i in range(args.chapters)
            }
            with transaction() as conn:
                for user in users.values():
                    set_tier(conn, user, tier, now=utcnow(), source="operator")
            figures = {}
            for mode in ("batched", "separate"):
                emulator.control.reset_calls()
                ids: list[str] = []
                started = time.monotonic()
                for i in range(args.chapters):
                    text_ = chapter(f"{run}-{tier}", i)
                    if mode == "batched":
                        ids.append(client.submit_analysis(users[mode, i], text_, analysis_type=TYPES))
                    else:
                        ids += [client.submit_analysis(users[mode, i], text_, analysis_type=t) for t in TYPES]
                    time.sleep(0.05)
                done = wait_results(redis_url, ids, args.timeout, workers=[worker])
                assert len(done) == len(ids), f"{len(ids) - len(done)} jobs did not finish"
                figures[mode] = measure(database_url, ids) | {
                    "emulator_calls": emulator.control.stats()["calls"],
                    "elapsed_s": round(time.monotonic() - started, 3),
                }
            b, s = figures["batched"], figures["separate"]
            figures["batched_over_separate"] = {
                "cost": format(Decimal(b["cost_usd"]) / Decimal(s["cost_usd"]), ".4f"),
                "calls": round(b["provider_calls"] / s["provider_calls"], 4),
            }
            report["tiers"][tier] = figures
            say(
                f"{tier:>12}: batched {b['provider_calls']} calls ${b['cost_usd']} "
                f"({b['prompt_tokens']}+{b['completion_tokens']} tokens) | separate {s['provider_calls']} calls "
                f"${s['cost_usd']} ({s['prompt_tokens']}+{s['completion_tokens']} tokens) | cost ratio "
                f"{figures['batched_over_separate']['cost']}"
            )
    finally:
        worker.stop()
        emulator.stop()
    if args.json_out:
        with open(args.json_out, "w") as fh:
            json.dump(report, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
