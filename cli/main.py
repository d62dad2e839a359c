"""`litink`: operate the worker system. Every read command takes --json."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import date
from typing import Any

from cli.render import table, to_json


def use_services() -> Any:
    """Point this process (and its children) at the configured or embedded servers."""
    from config import get_catalog, get_settings
    from devtools.embedded import ensure_services

    services = ensure_services()
    os.environ.update(services.env())
    get_settings.cache_clear()
    get_catalog.cache_clear()
    return services


def cmd_migrate(args) -> int:
    from db.migrate import upgrade_to_head

    upgrade_to_head(use_services().database_url)
    print("database is at the newest schema")
    return 0


def cmd_demo(args) -> int:
    from cli.demo import run_demo

    return run_demo(latency_ms=args.latency_ms)


def cmd_emulator(args) -> int:
    from emulator.server import serve

    print(f"OpenRouter emulator (a development tool) on http://{args.host}:{args.port}/api/v1")
    serve(args.host, args.port, args.latency_ms)
    return 0


def cmd_submit(args) -> int:
    from config import get_settings
    from tasks.client import LitinkClient

    use_services()
    client = LitinkClient(get_settings().require_redis_url())
    submit = client.submit_script if args.kind == "script" else client.submit_analysis
    content = sys.stdin.read() if args.content == "-" else args.content
    kwargs = {"idempotency_key": args.idempotency_key}
    job_id = submit(args.user, content, args.type, **kwargs) if args.type else submit(args.user, content, **kwargs)
    if args.no_wait:
        print(to_json({"job_id": job_id}) if args.json else job_id)
        return 0
    result = client.result(job_id, timeout=args.timeout)
    print(to_json(result) if args.json else _job_text(result))
    return 0 if result["status"] == "succeeded" else 1


def _job_text(r: dict) -> str:
    lines = [f"job {r['job_id']}: {r['status']}" + (f" ({r['reason']})" if r.get("reason") else "")]
    for key in ("kind", "type", "tier", "model_used", "used_fallback", "retry_after"):
        if r.get(key) is not None:
            lines.append(f"  {key}: {r[key]}")
    usage = r.get("usage") or {}
    lines.append(
        f"  tokens: {usage.get('prompt_tokens', 0)} + {usage.get('completion_tokens', 0)}, cost: ${usage.get('cost_usd')}"
    )
    if r.get("detail"):
        lines.append(f"  detail: {r['detail']}")
    if r.get("content"):
        lines.append("\n" + r["content"])
    return "\n".join(lines)


def cmd_jobs_show(args) -> int:
    from db.session import get_engine
    from workers.pipeline import jobs
    from workers.pipeline.job_result import job_result

    use_services()
    with get_engine().connect() as conn:
        row = jobs.find(conn, args.job_id)
    if row is None:
        print(f"no job {args.job_id}", file=sys.stderr)
        return 1
    result = job_result(row)
    print(to_json(result) if args.json else _job_text(result))
    return 0


def cmd_usage(args) -> int:
    from db.session import get_engine
    from workers.quotas.allowance import usage
    from workers.quotas.periods import utcnow

    use_services()
    with get_engine().connect() as conn:
        report = usage(conn, args.user, utcnow())
    if args.json:
        print(to_json(report))
        return 0
    print(
        f"{report['user_id']}: {report['tier']} ({report['status']}), period {report['period']['start']} to {report['period']['end']}"
    )
    print(
        f"  scripts:  {report['videos']['used']} used of {report['videos']['limit']}, {report['videos']['remaining']} left"
    )
    print(
        f"  analyses: {report['analyses']['used']} used of {report['analyses']['limit']}, {report['analyses']['remaining']} left"
    )
    print(f"  spend:    ${report['spend_usd']} of ${report['spend_cap_usd']} cap")
    print(f"  can generate: {'yes' if report['can_generate'] else 'no'}")
    return 0


def cmd_subscriptions_set(args) -> int:
    from db.session import transaction
    from workers.quotas.periods import utcnow
    from workers.quotas.subscriptions import set_tier

    use_services()
    try:
        with transaction() as conn:
            before = set_tier(conn, args.user, args.tier, now=utcnow(), source="operator")
    except KeyError as exc:
        print(exc.args[0], file=sys.stderr)
        return 2
    print(f"{args.user}: {before} -> {args.tier}")
    return 0


def cmd_models_sync(args) -> int:
    from db.session import transaction
    from workers.llm import model_catalog
    from workers.quotas.periods import utcnow

    use_services()
    models = model_catalog.fetch_models()
    with transaction() as conn:
        summary = model_catalog.sync(conn, models, utcnow())
    print(
        to_json(summary) if args.json else f"{summary['priced']} models priced, {summary['delisted']} no longer listed"
    )
    return 0


def cmd_models_list(args) -> int:
    from db.session import get_engine
    from workers.llm import model_catalog

    use_services()
    with get_engine().connect() as conn:
        rows = model_catalog.tier_models(conn)
    print(
        to_json(rows)
        if args.json
        else table(rows, ["tier", "role", "model", "prompt_price", "completion_price", "context_length", "listed"])
    )
    return 0


def cmd_costs(args) -> int:
    from db.session import get_engine
    from workers.reporting.html import render_html
    from workers.reporting.report import build_report

    use_services()
    with get_engine().connect() as conn:
        report = build_report(conn, args.date_from, args.date_to)
    if args.html:
        with open(args.html, "w") as fh:
            fh.write(render_html(report))
        print(f"wrote {args.html}", file=sys.stderr)
    if args.json:
        print(to_json(report))
    elif not args.html:
        from workers.reporting.text import render_text

        print(render_text(report))
    return 0


def cmd_reconcile(args: argparse.Namespace) -> int:
    from db.session import get_engine
    from workers.llm.provider_account import ProviderAccount
    from workers.reporting.reconcile import reconcile_until_now

    if args.start and args.end and args.start >= args.end:
        print(f"--from {args.start.isoformat()} is not before --to {args.end.isoformat()}", file=sys.stderr)
        return 2
    use_services()
    with get_engine().connect() as conn:
        report = reconcile_until_now(conn, args.start, args.end, ProviderAccount())
    print(to_json(report) if args.json else _reconcile_text(report))
    return 0


def _usd(value: Any) -> str:
    return "unknown" if value is None else f"${format(value, 'f')}"


def _reconcile_text(r: dict[str, Any]) -> str:
    m, p, d, checks = r["measured"], r["provider"], r["drift"], r["call_checks"]
    lines = [f"window {r['window']['from']} to {r['window']['to']}"]
    if m["missing"]:
        lines.append(f"  no {' or '.join(m['missing'])} snapshot: the provider's spend is unknown")
    else:
        lines.append(f"  measured between snapshots {m['from']} and {m['to']} ({m['closing_source']})")
    lines += [
        f"  provider spend:   {_usd(p['spend_usd'])}",
        f"  recorded:         {_usd(d['recorded_usd'])}  "
        + ", ".join(f"{source} {_usd(cost)}" for source, cost in r["ledger"]["by_source"].items()),
        f"  estimated:        {_usd(d['estimated_usd'])}",
        f"  unexplained:      {_usd(d['unexplained_usd'])}",
    ]
    if r["ledger"]["in_flight"]:
        lines.append(f"  {r['ledger']['in_flight']} calls still in flight: their cost is not in the ledger yet")
    if checks:
        lines.append(
            f"  call checks: {checks['checked']} looked up, {checks['matched']} matched, "
            f"{len(checks['mismatched'])} differ by {_usd(checks['difference_usd'])}, "
            f"{len(checks['not_found'])} not found, {len(checks['failed'])} failed, {checks['skipped']} skipped"
        )
    return "\n".join(lines)


def cmd_flower(args) -> int:
    from workers.ops.flower import main as flower_main

    use_services()
    return flower_main(["--insecure-local"] if args.insecure_local else [])


def cmd_webhooks(args) -> int:
    from config import get_settings
    from workers.ops.webhook_server import main as webhooks_main

    use_services()
    webhooks_main(args.host, args.port or get_settings().webhook_port)
    return 0


def _moment(value: str) -> Any:
    from workers.reporting.reconcile import parse_moment

    try:
        return parse_moment(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date or ISO time: {value!r}") from exc


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="litink", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    sub.add_parser("migrate", help="bring the database to the newest schema").set_defaults(func=cmd_migrate)

    demo = sub.add_parser("demo", help="run jobs for several tiers end to end and show what they cost")
    demo.add_argument("--latency-ms", type=int, default=300, help="emulator latency (without OPENROUTER_API_KEY)")
    demo.set_defaults(func=cmd_demo)

    emu = sub.add_parser("emulator", help="run the local OpenRouter emulator (development tool)")
    emu.add_argument("--host", default="127.0.0.1")
    emu.add_argument("--port", type=int, default=8099)
    emu.add_argument("--latency-ms", type=int, default=0)
    emu.set_defaults(func=cmd_emulator)

    submit = sub.add_parser("submit", help="submit a job and wait for its JobResult")
    submit.add_argument("kind", choices=["script", "analysis"])
    submit.add_argument("user")
    submit.add_argument("content", help="the content, or - to read standard input")
    submit.add_argument("--type", help="script type (cinematic, ...) or analysis type (summary, ...)")
    submit.add_argument("--idempotency-key")
    submit.add_argument("--timeout", type=float, default=300)
    submit.add_argument("--no-wait", action="store_true", help="print the job id and return")
    submit.add_argument("--json", action="store_true")
    submit.set_defaults(func=cmd_submit)

    jobs = sub.add_parser("jobs", help="inspect jobs").add_subparsers(dest="jobs_command", required=True)
    show = jobs.add_parser("show", help="a job's JobResult, from Postgres")
    show.add_argument("job_id")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_jobs_show)

    usage = sub.add_parser("usage", help="a user's tier, limits and use this period")
    usage.add_argument("user")
    usage.add_argument("--json", action="store_true")
    usage.set_defaults(func=cmd_usage)

    subs = sub.add_parser("subscriptions", help="manage subscriptions").add_subparsers(
        dest="subs_command", required=True
    )
    set_ = subs.add_parser("set", help="put a user on a tier (operator action)")
    set_.add_argument("user")
    set_.add_argument("tier")
    set_.set_defaults(func=cmd_subscriptions_set)

    models = sub.add_parser("models", help="OpenRouter's model catalog").add_subparsers(
        dest="models_command", required=True
    )
    sync = models.add_parser("sync", help="read /models into model_prices")
    sync.add_argument("--json", action="store_true")
    sync.set_defaults(func=cmd_models_sync)
    list_ = models.add_parser("list", help="each tier's models with price, context and availability")
    list_.add_argument("--json", action="store_true")
    list_.set_defaults(func=cmd_models_list)

    costs = sub.add_parser("costs", help="the cost and margin report")
    costs.add_argument("--from", dest="date_from", type=date.fromisoformat, help="first day, YYYY-MM-DD")
    costs.add_argument("--to", dest="date_to", type=date.fromisoformat, help="last day, YYYY-MM-DD (inclusive)")
    costs.add_argument("--json", action="store_true")
    costs.add_argument("--html", metavar="FILE", help="write a self-contained page with charts")
    costs.set_defaults(func=cmd_costs)

    rec = sub.add_parser("reconcile", help="the ledger against the provider's own figures: the drift")
    rec.add_argument("--from", dest="start", type=_moment, help="YYYY-MM-DD or ISO time, UTC (default today 00:00)")
    rec.add_argument("--to", dest="end", type=_moment, help="YYYY-MM-DD or ISO time, UTC (default now)")
    rec.add_argument("--json", action="store_true")
    rec.set_defaults(func=cmd_reconcile)

    flower = sub.add_parser("flower", help="run Flower behind basic auth (FLOWER_BASIC_AUTH)")
    flower.add_argument("--insecure-local", action="store_true", help="no auth, bound to 127.0.0.1 only")
    flower.set_defaults(func=cmd_flower)

    hooks = sub.add_parser("webhooks", help="run the Stripe webhook receiver")
    hooks.add_argument("--host", default="0.0.0.0")
    hooks.add_argument("--port", type=int)
    hooks.set_defaults(func=cmd_webhooks)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
