"""The ``webhooks`` process: Stripe's door. ``POST /stripe/webhook`` reads the body (up to
``WEBHOOK_MAX_BODY_BYTES``), verifies its signature, keeps the event in the ``stripe_events``
inbox and queues ``litink.process_stripe_event`` by id; ``GET /health`` says whether Postgres
and the broker answered the last probe. The body and the signature are never logged.

``/health`` answers from a background probe (no connection per request) and is rate
limited; the receiver listens on ``WEBHOOK_HOST`` (127.0.0.1 by default). Each answer (400,
413, 429, 503, 200) and why: docs/billing.md, "The webhook receiver".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from celery import Celery
from sqlalchemy import Engine, create_engine, text
from sqlalchemy import exc as sa_exc

from config import get_settings
from config.settings import LOCAL_ADDRESS
from config.tiers import BILLING_QUEUE
from db.errors import cause
from db.session import sqlalchemy_url
from workers.billing import inbox
from workers.billing.errors import BillingNotConfigured, InvalidPayload, InvalidSignature
from workers.billing.events import verify

logger = logging.getLogger(__name__)

WEBHOOK_PATH = "/stripe/webhook"
HEALTH_PATH = "/health"
PROCESS_TASK = "litink.process_stripe_event"
DEFAULT_HOST = LOCAL_ADDRESS
READ_CHUNK_BYTES = 64 * 1024
PING_TIMEOUT_S = 2.0
# Stripe waits about 10 s for an answer; an unreachable Postgres must give a 503 well before.
DB_CONNECT_TIMEOUT_S = 3
DB_STATEMENT_TIMEOUT_MS = 5000

# /health reads the last background probe; the probe runs this often.
HEALTH_PROBE_INTERVAL_S = 5.0
# /health requests served per second (and the burst allowed); beyond, 429.
HEALTH_RATE_PER_S = 20.0
HEALTH_BURST = 40


@dataclass
class Health:
    """What the last background probe found (``checked_at`` is None until the first one ends),
    and the task that probes."""

    database: str = "unknown"
    broker: str = "unknown"
    checked_at: datetime | None = None
    task: asyncio.Task[None] | None = None


class RateLimit:
    """A token bucket, used from the event loop's one thread only."""

    def __init__(self, rate_per_s: float, burst: int) -> None:
        self.rate, self.burst = rate_per_s, float(burst)
        self.tokens, self.updated = float(burst), time.monotonic()

    def wait_s(self) -> float:
        """0 if a request may pass now (and it is counted), else how long until one may."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


_CELERY_APP = web.AppKey("celery_app", Celery)
_ENGINE = web.AppKey("engine", Engine)
_MAX_BODY = web.AppKey("max_body_bytes", int)
_HEALTH = web.AppKey("health", Health)
_HEALTH_LIMIT = web.AppKey("health_limit", RateLimit)


class _TooLarge(Exception):
    pass


def inbox_engine(database_url: str | None = None) -> Engine:
    """The receiver's own small pool, with short timeouts, checked before use (a Postgres that
    came back must not cost a 503 per stale connection)."""
    url = database_url or get_settings().require_database_url()
    return create_engine(
        sqlalchemy_url(url),
        pool_size=5,
        max_overflow=10,
        pool_pre_ping=True,
        pool_timeout=DB_CONNECT_TIMEOUT_S,
        connect_args={
            "connect_timeout": DB_CONNECT_TIMEOUT_S,
            "options": f"-c statement_timeout={DB_STATEMENT_TIMEOUT_MS}",
        },
    )


def create_app(
    *,
    celery_app: Celery,
    database_url: str | None = None,
    max_body_bytes: int | None = None,
) -> web.Application:
    """The receiver, queueing through ``celery_app``. ``database_url`` defaults to ``DATABASE_URL``."""
    limit = max_body_bytes or get_settings().webhook_max_body_bytes
    # client_max_size guards request.read() too, should anything ever call it.
    application = web.Application(client_max_size=limit)
    application[_CELERY_APP] = celery_app
    application[_ENGINE] = inbox_engine(database_url)
    application[_MAX_BODY] = limit
    application[_HEALTH] = Health()
    application[_HEALTH_LIMIT] = RateLimit(HEALTH_RATE_PER_S, HEALTH_BURST)
    application.router.add_post(WEBHOOK_PATH, stripe_webhook)
    application.router.add_get(HEALTH_PATH, health)
    application.on_startup.append(_start_probe)
    application.on_cleanup.append(_dispose)
    return application


async def _start_probe(application: web.Application) -> None:
    # The first probe ends before the receiver serves, so /health never answers "unknown" once
    # it listens (and the pool holds a connection from the start).
    await _probe(application)
    application[_HEALTH].task = asyncio.create_task(_probe_forever(application))


async def _probe_forever(application: web.Application) -> None:
    while True:
        await asyncio.sleep(HEALTH_PROBE_INTERVAL_S)
        await _probe(application)


async def _probe(application: web.Application) -> None:
    database = await _check(_database_answers, application[_ENGINE])
    broker = await _check(_broker_answers, application[_CELERY_APP])
    # Updated in place: a started application's state is not reassigned.
    known = application[_HEALTH]
    known.database, known.broker, known.checked_at = database, broker, datetime.now(UTC)


async def _dispose(application: web.Application) -> None:
    task = application[_HEALTH].task
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    application[_ENGINE].dispose()


async def _read_bounded(request: web.Request, limit: int) -> bytes:
    """The body, refusing to hold more than ``limit`` bytes (the Content-Length may be absent)."""
    chunks, size = [], 0
    while chunk := await request.content.read(READ_CHUNK_BYTES):
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"received": False, "error": message}, status=status)


async def _blocking(call: Callable[..., Any], *args: Any) -> Any:
    """Database and broker calls block: keep them off the event loop."""
    return await asyncio.get_running_loop().run_in_executor(None, call, *args)


def _keep(engine: Engine, event: Any, body: str) -> inbox.Receipt:
    with engine.begin() as conn:
        return inbox.receive(conn, event, body)


def _publish(celery_app: Celery, event_id: str) -> None:
    # No result is wanted (the inbox row is the record), so the result backend is never touched.
    celery_app.send_task(PROCESS_TASK, kwargs={"event_id": event_id}, queue=BILLING_QUEUE, ignore_result=True)


async def stripe_webhook(request: web.Request) -> web.Response:
    limit = request.app[_MAX_BODY]
    if request.content_length is not None and request.content_length > limit:
        return _error(413, f"body larger than {limit} bytes")
    try:
        body = (await _read_bounded(request, limit)).decode("utf-8")
    except _TooLarge:
        return _error(413, f"body larger than {limit} bytes")
    except UnicodeDecodeError:
        return _error(400, "body is not UTF-8")

    try:
        event = verify(body, request.headers.get("Stripe-Signature"))
    except InvalidSignature as exc:
        logger.warning("Stripe webhook refused: invalid signature (%s)", exc)
        return _error(400, f"invalid signature: {exc}")
    except InvalidPayload as exc:
        logger.warning("Stripe webhook refused: invalid payload (%s)", exc)
        return _error(400, f"invalid payload: {exc}")
    except BillingNotConfigured as exc:
        logger.error("Stripe webhook not verified: %s", exc)
        return _error(500, "webhook secret not configured")

    try:
        receipt = await _blocking(_keep, request.app[_ENGINE], event, body)
    except sa_exc.SQLAlchemyError as exc:
        logger.error(
            "Stripe event %s not kept: database unavailable (%s)",
            event.id,
            cause(exc),
            extra={"event_id": event.id},
        )
        return _error(503, "database unavailable")

    queued = False
    if receipt.state == "received":
        try:
            await _blocking(_publish, request.app[_CELERY_APP], event.id)
            queued = True
        except Exception as exc:  # kept already: the sweep queues it
            logger.warning(
                "Stripe event %s kept but not queued (%s); the sweep will queue it",
                event.id,
                type(exc).__name__,
                extra={"event_id": event.id},
            )
    logger.info(
        "Stripe event %s (%s) received: %s",
        event.id,
        event.type,
        "new" if receipt.new else f"again, {receipt.state}",
        extra={"event_id": event.id, "event_type": event.type},
    )
    return web.json_response({"received": True, **receipt.as_dict(), "queued": queued}, status=200)


def _database_answers(engine: Engine) -> bool:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    return True


def _broker_answers(celery_app: Celery) -> bool:
    with celery_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=PING_TIMEOUT_S)
    return True


async def _check(call: Callable[..., Any], *args: Any) -> str:
    try:
        await asyncio.wait_for(_blocking(call, *args), timeout=PING_TIMEOUT_S * 3)
        return "ok"
    except Exception:
        return "unreachable"


async def health(request: web.Request) -> web.Response:
    """200 while the process serves; ``database`` says whether a webhook could be kept,
    ``broker`` whether it could be queued at once, as the last background probe found them
    (``checked_at``). Nothing is opened per request; beyond the rate limit, 429."""
    wait_s = request.app[_HEALTH_LIMIT].wait_s()
    if wait_s > 0:
        return web.json_response(
            {"status": "rate_limited"}, status=429, headers={"Retry-After": str(max(1, round(wait_s)))}
        )
    known = request.app[_HEALTH]
    return web.json_response(
        {
            "status": "ok",
            "database": known.database,
            "broker": known.broker,
            "checked_at": known.checked_at.isoformat() if known.checked_at else None,
        }
    )


def main(celery_app: Celery, host: str = DEFAULT_HOST, port: int | None = None) -> None:
    """Serve until interrupted (``WEBHOOK_PORT`` unless ``port`` is given)."""
    port = port or get_settings().webhook_port
    logger.info("Stripe webhook receiver on http://%s:%d%s", host, port, WEBHOOK_PATH)
    web.run_app(create_app(celery_app=celery_app), host=host, port=port, print=None)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Receive Stripe webhooks, verify and keep them, and queue them.")
    parser.add_argument("--host", default=None, help="default: WEBHOOK_HOST, 127.0.0.1")
    parser.add_argument("--port", type=int, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=get_settings().log_level)
    # Run as a program, this module is the top of its process: it is where the app is chosen.
    from workers.app import app

    main(app, args.host or get_settings().webhook_host, args.port)
