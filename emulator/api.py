"""The read-only OpenRouter endpoints: /models, /key and /generation.

Workers refresh prices from /models, check their key on /key and may look up a call's
cost on /generation; each answers from the catalogue or the call log.
"""

from __future__ import annotations

from aiohttp import web

from .auth import bearer_token, key_label, require_key
from .errors import error_response, json_response
from .responses import generation_body, key_body, models_body
from .state import STATE

__all__ = ["generation", "key", "models"]


async def models(request: web.Request) -> web.Response:
    """The model list is public, as on OpenRouter: no key needed."""
    return json_response(models_body())


async def key(request: web.Request) -> web.Response:
    denied = require_key(request)
    if denied is not None:
        return denied
    token = bearer_token(request) or ""
    return json_response(key_body(key_label(token), request.app[STATE].calls.cost_total))


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
