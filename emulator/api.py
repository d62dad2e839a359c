"""The read-only OpenRouter endpoints: /models, /key, /generation and /credits.

Workers refresh prices from /models, snapshot their key's spend from /key, look up a
call's cost on /generation and, with a management key, the account's on /credits; each
answers from the catalogue or the call log.
"""

from __future__ import annotations

import time

from aiohttp import web

from .auth import bearer_token, is_management_key, key_label, require_key
from .errors import error_response, json_response
from .responses import credits_body, generation_body, key_body, models_body
from .state import STATE

__all__ = ["credits", "generation", "key", "models"]


async def models(request: web.Request) -> web.Response:
    """The model list is public, as on OpenRouter: no key needed."""
    return json_response(models_body())


async def key(request: web.Request) -> web.Response:
    denied = require_key(request)
    if denied is not None:
        return denied
    token = bearer_token(request) or ""
    figures = request.app[STATE].calls.spend.figures(token, time.time())
    return json_response(key_body(key_label(token), figures, management=is_management_key(token)))


async def credits(request: web.Request) -> web.Response:
    """The account's credits; like OpenRouter, only a management key may read them."""
    denied = require_key(request)
    if denied is not None:
        return denied
    if not is_management_key(bearer_token(request) or ""):
        return error_response(403, "Only management keys can fetch credits")
    state = request.app[STATE]
    return json_response(credits_body(state.total_credits, state.calls.spend.account_total()))


async def generation(request: web.Request) -> web.Response:
    denied = require_key(request)
    if denied is not None:
        return denied
    generation_id = request.query.get("id", "")
    if not generation_id:
        return error_response(400, "The id query parameter is required")
    record = request.app[STATE].calls.get(generation_id)
    if record is None:
        return error_response(404, f"Generation {generation_id} not found")
    return json_response(generation_body(record))
