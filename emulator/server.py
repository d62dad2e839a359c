"""The emulator's aiohttp application and a blocking ``serve`` for the command line.

One asyncio event loop serves every call; handlers never block, so a single process
can keep hundreds of slow (latency-injected) calls in flight.
"""

from __future__ import annotations

import logging

from aiohttp import web

from . import api, chat, control_api
from .calllog import DEFAULT_CAPACITY, CallLog
from .errors import error_response
from .state import STATE, EmulatorState

__all__ = ["create_app", "serve"]

API_PREFIX = "/api/v1"
LISTEN_BACKLOG = 1024  # room for a burst of hundreds of simultaneous connects

log = logging.getLogger(__name__)


@web.middleware
async def http_errors_as_json(request: web.Request, handler):
    """Unknown paths and wrong methods answer in OpenRouter's error shape, not HTML."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(exc.status, exc.reason or "error")


def create_app(latency_ms: float = 0, jitter_ms: float = 0, call_log_size: int = DEFAULT_CAPACITY) -> web.Application:
    """A fresh emulator: its own state, no faults, the given latency."""
    app = web.Application(
        middlewares=[http_errors_as_json, control_api.bad_input_as_400],
        client_max_size=32 * 1024 * 1024,
    )
    app[STATE] = EmulatorState(latency_ms=latency_ms, jitter_ms=jitter_ms, calls=CallLog(call_log_size))
    app.router.add_post(f"{API_PREFIX}/chat/completions", chat.chat_completions)
    app.router.add_get(f"{API_PREFIX}/models", api.models)
    app.router.add_get(f"{API_PREFIX}/key", api.key)
    app.router.add_get(f"{API_PREFIX}/auth/key", api.key)  # the older alias of /key
    app.router.add_get(f"{API_PREFIX}/generation", api.generation)
    app.router.add_get(f"{API_PREFIX}/credits", api.credits)
    app.router.add_routes(control_api.routes)
    return app


def serve(host: str = "127.0.0.1", port: int = 8099, latency_ms: float = 0, jitter_ms: float = 0) -> None:
    """Run the emulator until interrupted (blocking)."""
    app = create_app(latency_ms=latency_ms, jitter_ms=jitter_ms)
    print(f"OpenRouter emulator (development only) on http://{host}:{port}{API_PREFIX}", flush=True)
    web.run_app(app, host=host, port=port, backlog=LISTEN_BACKLOG, shutdown_timeout=2.0, print=None)
