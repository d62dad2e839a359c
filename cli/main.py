"""`litink`: operate the worker system. Every read command takes --json.

Each command is a thin Click function: it asks a domain module for plain data and prints it
(JSON with --json, otherwise text and Rich tables). `main` is the console script's entry.
"""

from __future__ import annotations

import os
import signal
import sys
import traceback
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

import click

from cli.environment import DATABASE, SERVICES, epilog
from cli.errors import explain
from cli.render import console, err_console, table, to_json
from cli.services import use_services
from config.settings import masked_url
from db.models import STRIPE_EVENT_STATES
from workers.money import display_usd
from workers.ops.flower import FLOWER_PORT

CONTEXT = {"help_option_names": ["-h", "--help"], "show_default": True, "max_content_width": 100}
JOB_KINDS = ("script", "analysis")


class IsoDate(click.ParamType):
    """A calendar day written YYYY-MM-DD."""

    name = "YYYY-MM-DD"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> date:
        if isinstance(value, date):
            return value
        try:
            return date.fromisoformat(value)
        except ValueError:
            self.fail(f"{value!r} is not a date written YYYY-MM-DD", param, ctx)


json_option = click.option("--json", "as_json", is_flag=True, help="print JSON instead of text")


@click.group(context_settings=CONTEXT, epilog=epilog())
@click.option("--debug", is_flag=True, envvar="LITINK_DEBUG", help="show the traceback of an error")
@click.option(
    "--embedded",
    is_flag=True,
    help="start development Postgres / Redis under .data/ for whichever of DATABASE_URL / REDIS_URL is unset",
)
def litink(debug: bool, embedded: bool) -> None:
    """Operate the Litink workers. Every read command takes --json.

    Commands use DATABASE_URL and REDIS_URL; without them they stop and say which is
    missing (only `demo` and --embedded start development servers)."""


# -- set-up and development ------------------------------------------------------------------


@litink.command(epilog=epilog(*DATABASE))
def migrate() -> None:
    """Bring the database to the newest schema."""
    from db.migrate import upgrade_to_head

    before, after = upgrade_to_head(use_services().database_url)
    if before == after:
        click.echo(f"nothing to migrate: the database is already at the newest schema ({after})")
    else:
        click.echo(f"migrated the database from {before or 'an empty schema'} to {after} (the newest)")


@litink.command(epilog=epilog(*SERVICES, "OPENROUTER_API_KEY", "OPENROUTER_BASE_URL"))
@click.option("--latency-ms", type=int, default=300, help="emulator latency (without OPENROUTER_API_KEY)")
def demo(latency_ms: int) -> None:
    """Run jobs for several tiers end to end and show what they cost."""
    from cli.demo import run_demo

    sys.exit(run_demo(latency_ms=latency_ms))


@litink.command(epilog=epilog())
@click.option("--host", default="127.0.0.1")
@click.option("--port", type=int, default=8099)
@click.option("--latency-ms", type=int, default=0)
def emulator(host: str, port: int, latency_ms: int) -> None:
    """Run the local OpenRouter emulator (development tool)."""
    from emulator.server import serve

    serve(host, port, latency_ms)  # it prints its own start line


# -- jobs ------------------------------------------------------------------------------------


@litink.command(epilog=epilog("REDIS_URL", "REDIS_SENTINEL_MASTER"))
@click.argument("kind", type=click.Choice(JOB_KINDS))
@click.argument("user")
@click.argument("content")
@click.option("--type", "type_", help="script type (cinematic, ...) or analysis type (summary, ...)")
@click.option("--idempotency-key")
@click.option("--timeout", type=float, default=300, help="seconds to wait for the JobResult")
@click.option("--no-wait", is_flag=True, help="print the job id and return")
@json_option
def submit(
    kind: str,
    user: str,
    content: str,
    type_: str | None,
    idempotency_key: str | None,
    timeout: float,
    no_wait: bool,
    as_json: bool,
) -> None:
    """Submit a job and wait for its JobResult (CONTENT - reads standard input)."""
    from config import get_settings
    from tasks.client import LitinkClient

    use_services(database=False, redis=True)
    settings = get_settings()
    master = settings.redis_sentinel_master if settings.uses_sentinel else None
    client = LitinkClient(settings.require_redis_url(), transport_options={"master_name": master} if master else None)
    if not client.intake_consumers(timeout=1.0):
        where = masked_url(settings.require_redis_url())
        if not no_wait:
            raise click.ClickException(
                f"no worker consumes queue intake on {where} (REDIS_URL): start one"
                " (`celery -A workers.app worker`, or `honcho start`), or pass --no-wait to only enqueue"
            )
        click.echo(f"note: no worker consumes queue intake on {where} yet; the job waits in the queue", err=True)
    send = client.submit_script if kind == "script" else client.submit_analysis
    text = sys.stdin.read() if content == "-" else content
    job_id = (
        send(user, text, type_, idempotency_key=idempotency_key)
        if type_
        else send(user, text, idempotency_key=idempotency_key)
    )
    if no_wait:
        click.echo(to_json({"job_id": job_id}) if as_json else job_id)
        return
    from celery.exceptions import TimeoutError as ResultTimeout

    try:
        with err_console().status(f"waiting for job {job_id} (up to {timeout:g} s)"):
            result = client.result(job_id, timeout=timeout)
    except ResultTimeout:
        raise click.ClickException(
            f"job {job_id} did not finish within {timeout:g} s; it is still queued or running:"
            f" litink jobs show {job_id}"
        ) from None
    click.echo(to_json(result) if as_json else _job_text(result))
    if result["status"] != "succeeded":
        sys.exit(1)


def _job_text(r: Mapping[str, Any]) -> str:
    lines = [f"job {r['job_id']}: {r['status']}" + (f" ({r['reason']})" if r.get("reason") else "")]
    for key in ("kind", "type", "tier", "model_used", "used_fallback", "retry_after"):
        if r.get(key) is not None:
            lines.append(f"  {key}: {r[key]}")
    usage = r.get("usage") or {}
    lines.append(
        f"  tokens: {usage.get('prompt_tokens', 0)} prompt + {usage.get('completion_tokens', 0)} completion,"
        f" cost: {display_usd(usage.get('cost_usd'))}"
    )
    if r.get("detail"):
        lines.append(f"  detail: {r['detail']}")
    if r.get("content"):
        lines.append("\n" + r["content"])
    return "\n".join(lines)


@litink.group(context_settings=CONTEXT)
def jobs() -> None:
    """Inspect jobs."""


@jobs.command("show", epilog=epilog(*DATABASE))
@click.argument("job_id")
@json_option
def jobs_show(job_id: str, as_json: bool) -> None:
    """A job's JobResult, from Postgres. JOB_ID may be the first 8 or more characters of the id."""
    from db.session import get_engine
    from workers.pipeline import jobs as job_store
    from workers.pipeline.job_result import job_result

    use_services()
    with get_engine().connect() as conn:
        try:
            row = job_store.find_by_id_or_prefix(conn, job_id)
        except job_store.AmbiguousPrefix as exc:
            raise click.ClickException(str(exc)) from None
    if row is None:
        click.echo(f"no job {job_id}", err=True)
        sys.exit(1)
    result = job_result(row)
    click.echo(to_json(result) if as_json else _job_text(result))


# -- users -----------------------------------------------------------------------------------


@litink.command(epilog=epilog(*DATABASE))
@click.argument("user")
@json_option
def usage(user: str, as_json: bool) -> None:
    """A user's tier, limits and use this period."""
    from db.session import get_engine
    from workers.quotas.allowance import usage as usage_of
    from workers.quotas.periods import utcnow

    use_services()
    with get_engine().connect() as conn:
        report = usage_of(conn, user, utcnow())
    if as_json:
        click.echo(to_json(report))
        return
    click.echo(_usage_text(report))


SUBSCRIPTION_STATUS = {
    "none": "no subscription, so the default tier",
    "active": "active subscription",
    "past_due": "subscription past due, in its grace period",
}


def _usage_text(report: dict[str, Any]) -> str:
    """The same names as the JSON (`videos`, `videos_per_month`, `analyses`, `spend_usd`)."""
    status = SUBSCRIPTION_STATUS.get(report["status"], f"subscription {report['status']}")
    cap = "no cap" if report["spend_cap_usd"] is None else f"of {display_usd(report['spend_cap_usd'], 'revenue')} cap"
    videos, analyses = report["videos"], report["analyses"]
    return (
        f"{report['user_id']}: tier {report['tier']} ({status}),"
        f" period {report['period']['start']} to {report['period']['end']}\n"
        f"  videos:   {videos['used']} used of {videos['limit']}, {videos['remaining']} left"
        " (videos_per_month; one per script job)\n"
        f"  analyses: {analyses['used']} used of {analyses['limit']}, {analyses['remaining']} left\n"
        f"  spend:    {display_usd(report['spend_usd'])} {cap}\n"
        f"  can generate: {'yes' if report['can_generate'] else 'no'}"
    )


@litink.group(context_settings=CONTEXT)
def subscriptions() -> None:
    """Manage subscriptions."""


@subscriptions.command("set", epilog=epilog(*DATABASE))
@click.argument("user")
@click.argument("tier")
def subscriptions_set(user: str, tier: str) -> None:
    """Put a user on a tier (operator action)."""
    from db.session import transaction
    from workers.quotas.periods import utcnow
    from workers.quotas.subscriptions import set_tier

    use_services()
    try:
        with transaction() as conn:
            before = set_tier(conn, user, tier, now=utcnow(), source="operator")
    except KeyError as exc:
        click.echo(exc.args[0], err=True)
        sys.exit(2)
    click.echo(f"{user}: {before} -> {tier}")


# -- models and money ------------------------------------------------------------------------


@litink.group(context_settings=CONTEXT)
def models() -> None:
    """OpenRouter's model catalog."""


@models.command("sync", epilog=epilog(*DATABASE, "OPENROUTER_API_KEY", "OPENROUTER_BASE_URL"))
@json_option
def models_sync(as_json: bool) -> None:
    """Read OpenRouter's /models into model_prices."""
    from db.session import transaction
    from workers.llm import model_catalog
    from workers.quotas.periods import utcnow

    use_services()
    listed = model_catalog.fetch_models()
    with transaction() as conn:
        summary = model_catalog.sync(conn, listed, utcnow())
    click.echo(
        to_json(summary) if as_json else f"{summary['priced']} models priced, {summary['delisted']} no longer listed"
    )


@models.command("list", epilog=epilog(*DATABASE))
@json_option
def models_list(as_json: bool) -> None:
    """Each tier's models with price, context and availability."""
    from db.session import get_engine
    from workers.llm import model_catalog

    use_services()
    with get_engine().connect() as conn:
        rows = model_catalog.tier_models(conn)
    if as_json:
        click.echo(to_json(rows))
        return
    shown = [
        r
        | {
            "prompt_price": display_usd(r["prompt_price"], "price"),
            "completion_price": display_usd(r["completion_price"], "price"),
        }
        for r in rows
    ]
    columns = ["tier", "role", "model", "prompt_price", "completion_price", "context_length", "listed"]
    console().print(table(shown, columns))
    if not any(r["synced_at"] for r in rows):
        click.echo("no prices yet: run `litink models sync` to read OpenRouter's /models", err=True)


HEALTH_COLUMNS = ["model", "state", "reason", "cooldown_left_seconds", "consecutive_failures", "window", "used_by"]


@models.command("health", epilog=epilog("REDIS_URL"))
@json_option
def models_health(as_json: bool) -> None:
    """Each model's shared health: healthy, unhealthy (every worker skips it) or probing."""
    from workers.llm.model_health import health_report

    use_services(database=False, redis=True)
    report = health_report()
    if as_json:
        click.echo(to_json(report))
        return
    rows = [
        r | {"used_by": ", ".join(r["used_by"]), "window": f"{r['window_failures']}/{r['window_calls']} failed"}
        for r in report["models"]
    ]
    console().print(table(rows, HEALTH_COLUMNS))
    if not report["enabled"]:
        click.echo("shared model health is off (MODEL_HEALTH_ENABLED=false): no model is skipped", err=True)


@litink.command(epilog=epilog(*DATABASE))
@click.option("--from", "date_from", type=IsoDate(), help="first day [default: the first of --to's month]")
@click.option("--to", "date_to", type=IsoDate(), help="last day, inclusive [default: today, UTC]")
@json_option
@click.option("--html", metavar="FILE", help="write a self-contained page with charts")
def costs(date_from: date | None, date_to: date | None, as_json: bool, html: str | None) -> None:
    """The cost and margin report."""
    from db.session import get_engine

    if date_from and date_to and date_from > date_to:
        raise click.BadParameter(f"{date_from} is after --to {date_to}", param_hint="--from")
    from workers.reporting.html import render_html
    from workers.reporting.report import build_report

    use_services()
    with get_engine().connect() as conn:
        report = build_report(conn, date_from, date_to)
    if html:
        with open(html, "w") as fh:
            fh.write(render_html(report))
        click.echo(f"wrote {html}", err=True)
    if as_json:
        click.echo(to_json(report))
    elif not html:
        from workers.reporting.text import text_report

        console().print(text_report(report))


class Moment(click.ParamType):
    """A day (YYYY-MM-DD, meaning its midnight) or an ISO 8601 time; without a zone, UTC."""

    name = "WHEN"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        from workers.reporting.reconcile import parse_moment

        try:
            return parse_moment(value)
        except ValueError:
            self.fail(f"{value!r} is not a date (YYYY-MM-DD) or an ISO 8601 time", param, ctx)


@litink.command(epilog=epilog(*DATABASE, "OPENROUTER_API_KEY", "OPENROUTER_BASE_URL", "OPENROUTER_MANAGEMENT_KEY"))
@click.option("--from", "start", type=Moment(), help="window start, inclusive [default: today 00:00 UTC]")
@click.option("--to", "end", type=Moment(), help="window end, exclusive [default: now, closed by a live /key reading]")
@json_option
def reconcile(start: datetime | None, end: datetime | None, as_json: bool) -> None:
    """The ledger against OpenRouter's own figures: recorded, estimated and unexplained drift."""
    if start and end and start >= end:
        raise click.BadParameter(f"{start.isoformat()} is not before --to {end.isoformat()}", param_hint="--from")
    from db.session import get_engine
    from workers.llm.provider_account import ProviderAccount
    from workers.reporting.reconcile import reconcile_until_now

    use_services()
    with get_engine().connect() as conn:
        report = reconcile_until_now(conn, start, end, ProviderAccount())
    click.echo(to_json(report) if as_json else _reconcile_text(report))


def _reconcile_text(r: dict[str, Any]) -> str:
    m, d, checks = r["measured"], r["drift"], r["call_checks"]
    lines = [f"window {r['window']['from']} to {r['window']['to']}"]
    if m["missing"]:
        lines.append(f"  no {' or '.join(m['missing'])} snapshot: the provider's spend is unknown")
    else:
        lines.append(f"  measured between snapshots {m['from']} and {m['to']} ({m['closing_source']})")
    sources = ", ".join(f"{source} {display_usd(cost)}" for source, cost in r["ledger"]["by_source"].items())
    lines += [
        f"  provider spend:  {display_usd(r['provider']['spend_usd'])}",
        f"  recorded:        {display_usd(d['recorded_usd'])}" + (f"  ({sources})" if sources else ""),
        f"  estimated:       {display_usd(d['estimated_usd'])}",
        f"  unexplained:     {display_usd(d['unexplained_usd'])}",
    ]
    if r["ledger"]["in_flight"]:
        lines.append(f"  {r['ledger']['in_flight']} calls still in flight: their cost is not in the ledger yet")
    if checks:
        lines.append(
            f"  call checks: {checks['checked']} looked up, {checks['matched']} matched, "
            f"{len(checks['mismatched'])} differ by {display_usd(checks['difference_usd'])}, "
            f"{len(checks['not_found'])} not found, {len(checks['failed'])} failed, {checks['skipped']} skipped"
        )
    return "\n".join(lines)


# -- long-running processes ------------------------------------------------------------------


@litink.command(epilog=epilog("REDIS_URL", "REDIS_SENTINEL_MASTER", "FLOWER_BASIC_AUTH"))
@click.option("--insecure-local", is_flag=True, help="no auth, bound to 127.0.0.1 only")
@click.option("--port", type=int, default=FLOWER_PORT, help="Flower's HTTP port")
def flower(insecure_local: bool, port: int) -> None:
    """Run Flower behind basic auth (FLOWER_BASIC_AUTH)."""
    from workers.ops.flower import main as flower_main

    use_services(database=False, redis=True)
    sys.exit(flower_main(["--port", str(port)] + (["--insecure-local"] if insecure_local else [])))


@litink.command(
    epilog=epilog(*DATABASE, "STRIPE_WEBHOOK_SECRET", "STRIPE_WEBHOOK_TOLERANCE", "WEBHOOK_HOST", "WEBHOOK_PORT")
)
@click.option("--host", help="[default: WEBHOOK_HOST, 127.0.0.1]")
@click.option("--port", type=int, help="[default: WEBHOOK_PORT]")
def webhooks(host: str | None, port: int | None) -> None:
    """Run the Stripe webhook receiver: verify, keep in Postgres, then queue."""
    from config import get_settings
    from workers.app import app
    from workers.ops.webhook_server import main as webhooks_main

    # Postgres keeps every event before Stripe is answered; the broker may be down (the beat
    # sweep queues what could not be queued at once).
    use_services(database=True, redis=False)
    webhooks_main(app, host or get_settings().webhook_host, port or get_settings().webhook_port)


STRIPE_EVENT_COLUMNS = ["event_id", "type", "state", "outcome", "attempts", "received_at", "error"]


@litink.group("stripe", context_settings=CONTEXT)
def stripe_group() -> None:
    """The Stripe event inbox (docs/billing.md)."""


@stripe_group.command("events", epilog=epilog(*DATABASE))
@click.option("--state", type=click.Choice(STRIPE_EVENT_STATES), help="only events in this state")
@click.option("--limit", type=click.IntRange(min=1), default=50, help="how many, newest first")
@json_option
def stripe_events(state: str | None, limit: int, as_json: bool) -> None:
    """The newest events in the inbox, with their state, outcome, attempts and error."""
    from db.session import get_engine
    from workers.billing import list_events

    use_services()
    with get_engine().connect() as conn:
        rows = list_events(conn, state=state, limit=limit)
    if as_json:
        click.echo(to_json(rows))
        return
    console().print(table(rows, STRIPE_EVENT_COLUMNS))
    if not rows:
        click.echo("no Stripe events" + (f" in state {state}" if state else ""), err=True)


@stripe_group.command("replay", epilog=epilog(*DATABASE, "STRIPE_SECRET_KEY"))
@click.argument("event_id")
@json_option
def stripe_replay(event_id: str, as_json: bool) -> None:
    """Process one stored event again, whatever its state (after a fix). Exit status 1 if it
    fails again."""
    from workers.billing import replay_event

    use_services()
    result = replay_event(event_id)
    if result is None:
        click.echo(f"no event {event_id} with a stored body in the inbox", err=True)
        sys.exit(1)
    click.echo(to_json(result.as_dict()) if as_json else f"{result.event_id} ({result.type}): {result.outcome}")
    if result.outcome.startswith(("failed", "invalid_payload")):
        sys.exit(1)


def main(argv: list[str] | None = None) -> int:
    """The console script: run one command, return its exit code. Every failure is one line on
    stderr (cli/errors.py words it); --debug or LITINK_DEBUG=1 adds the traceback."""
    args = sys.argv[1:] if argv is None else list(argv)
    debug = False
    try:
        with litink.make_context("litink", args) as ctx:
            debug = bool(ctx.params.get("debug"))
            litink.invoke(ctx)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.UsageError as exc:  # one line, not Click's three
        where = f"; see `{exc.ctx.command_path} --help`" if exc.ctx else ""
        click.echo(f"Error: {exc.format_message().rstrip('.')}{where}", err=True)
        return exc.exit_code
    except click.ClickException as exc:
        click.echo(f"Error: {exc.format_message()}", err=True)
        return exc.exit_code
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BrokenPipeError:
        return _reader_went_away()
    except (KeyboardInterrupt, click.Abort):
        click.echo("interrupted", err=True)
        return 130
    except Exception as exc:
        if debug:
            traceback.print_exc()
        click.echo(f"Error: {explain(exc)}", err=True)
        return 1
    return 0


def _reader_went_away() -> int:
    """`litink costs --json | head`: the reader closed the pipe, which is its right. Stop quietly,
    as `cat` would, and keep the interpreter from failing again when it flushes stdout at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 128 + signal.SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
