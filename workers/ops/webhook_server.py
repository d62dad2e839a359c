"""The ``webhooks`` process: receives Stripe webhooks and queues them for the workers.

It verifies nothing and changes nothing itself: ``POST /stripe/webhook`` hands the raw body and
its ``Stripe-Signature`` header to ``litink.handle_stripe_event`` on queue ``intake`` and answers
202 at once, so Stripe never waits on the database. The task verifies, deduplicates and applies.

- 413 for a body over ``WEBHOOK_MAX_BODY_BYTES`` (never read whole), 400 without a signature
  header or with a body that is not UTF-8, 503 when the broker cannot take the message (Stripe
  then retries the delivery).
- ``GET /health``: 200 while the process runs, with whether the broker answered.

The body and the signature are never logged, and the task message's kwargs repr hides them
from Flower and task events.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging

from aiohttp import web
from celery import Celery

from config import get_settings

logger = logging.getLogger(__name__)

WEBHOOK_PATH = "/stripe/webhook"
HEALTH_PATH = "/health"
EVENT_TASK = "litink.handle_stripe_event"
EVENT_QUEUE = "intake"
DEFAULT_HOST = "0.0.0.0"
READ_CHUNK_BYTES = 64 * 1024
BROKER_PING_TIMEOUT_S = 2.0

_CELERY_APP = web.AppKey("celery_app", Celery)
_MAX_BODY = web.AppKey("max_body_bytes", int)


class _TooLarge(Exception):
    pass


def create_app(*, celery_app: Celery | None = None, max_body_bytes: int | None = None) -> web.Application:
    """The receiver. ``celery_app`` defaults to the workers' own app (imported lazily)."""
    if celery_app is None:
        from workers.app import app as celery_app
    limit = max_body_bytes or get_settings().webhook_max_body_bytes
    # client_max_size guards request.read() too, should anything ever call it.
    application = web.Application(client_max_size=limit)
    application[_CELERY_APP] = celery_app
    application[_MAX_BODY] = limit
    application.router.add_post(WEBHOOK_PATH, stripe_webhook)
    application.router.add_get(HEALTH_PATH, health)
    return application


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
    return web.json_response({"queued": False, "error": message}, status=status)


async def stripe_webhook(request: web.Request) -> web.Response:
    limit = request.app[_MAX_BODY]
    if request.content_length is not None and request.content_length > limit:
        return _error(413, f"body larger than {limit} bytes")
    signature = request.headers.get("Stripe-Signature")
    if not signature:
        return _error(400, "missing Stripe-Signature header")
    try:
        body = (await _read_bounded(request, limit)).decode("utf-8")
    except _TooLarge:
        return _error(413, f"body larger than {limit} bytes")
    except UnicodeDecodeError:
        return _error(400, "body is not UTF-8")

    send = functools.partial(
        request.app[_CELERY_APP].send_task,
        EVENT_TASK,
        kwargs={"payload": body, "signature": signature},
        kwargsrepr=repr({"payload": f"<{len(body)} chars>", "signature": "<hidden>"}),
        queue=EVENT_QUEUE,
    )
    try:
        # Publishing blocks (and retries a lost connection): keep it off the event loop.
        result = await asyncio.get_running_loop().run_in_executor(None, send)
    except Exception as exc:
        logger.error("Stripe webhook not queued: broker unavailable (%s)", type(exc).__name__)
        return _error(503, "broker unavailable")
    logger.info("Stripe webhook queued", extra={"task_id": result.id})
    return web.json_response({"queued": True, "task_id": result.id}, status=202)


def _broker_answers(celery_app: Celery) -> bool:
    with celery_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=BROKER_PING_TIMEOUT_S)
    return True


async def health(request: web.Request) -> web.Response:
    """200 while the process serves; ``broker`` tells whether a webhook could be queued now."""
    loop = asyncio.get_running_loop()
    try:
        await asyncio.wait_for(
            loop.run_in_executor(None, _broker_answers, request.app[_CELERY_APP]),
            timeout=BROKER_PING_TIMEOUT_S * 2,
        )
        broker = "ok"
    except Exception:
        broker = "unreachable"
    return web.json_response({"status": "ok", "broker": broker})


def main(host: str = DEFAULT_HOST, port: int | None = None) -> None:
    """Serve until interrupted (``WEBHOOK_PORT`` unless ``port`` is given)."""
    port = port or get_settings().webhook_port
    logger.info("Stripe webhook receiver on http://%s:%d%s", host, port, WEBHOOK_PATH)
    web.run_app(create_app(), host=host, port=port, print=None)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Receive Stripe webhooks and queue them.")
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=get_settings().log_level)
    main(args.host, args.port)
