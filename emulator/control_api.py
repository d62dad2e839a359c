"""The development-only control API under /_emulator.

Tests, the demo and benchmarks steer the emulator through it: queue faults, set
latency, make a model report another id, read and clear the call log. It has no
authentication; the emulator is a local tool and must never face the internet.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from .catalog import find_model
from .errors import error_response, json_response
from .faults import ANY_MODEL, FAULT_KINDS, FaultRule
from .state import STATE

__all__ = ["routes"]

routes = web.RouteTableDef()


class _BadInput(ValueError):
    """A control request that cannot be applied."""


async def _body(request: web.Request) -> dict[str, Any]:
    text = await request.text()
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise _BadInput("body must be JSON") from exc
    if not isinstance(value, dict):
        raise _BadInput("body must be a JSON object")
    return value


def _number(body: dict, name: str, default: float | None, minimum: float = 0.0) -> float | None:
    value = body.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        raise _BadInput(f"{name} must be a number >= {minimum}")
    return value


@web.middleware
async def bad_input_as_400(request: web.Request, handler):
    """Turn a _BadInput raised by a control handler into a 400 in the usual error shape."""
    try:
        return await handler(request)
    except _BadInput as exc:
        return error_response(400, str(exc))


@routes.get("/_emulator/health")
async def health(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


@routes.post("/_emulator/faults")
async def add_fault(request: web.Request) -> web.Response:
    body = await _body(request)
    model = body.get("model", ANY_MODEL)
    kind = body.get("fault")
    if kind not in FAULT_KINDS:
        raise _BadInput(f"fault must be one of: {', '.join(FAULT_KINDS)}")
    if not isinstance(model, str) or (model != ANY_MODEL and find_model(model) is None):
        raise _BadInput(f"model must be '*' or a catalogue model id, not {model!r}")
    times = body.get("times", 1)
    if isinstance(times, bool) or not isinstance(times, int) or times == 0 or times < -1:
        raise _BadInput("times must be a positive integer or -1 (forever)")
    rule = FaultRule(
        kind=kind,
        model=model,
        times=times,
        retry_after=_number(body, "retry_after", None),
        delay_s=_number(body, "delay_s", 30.0),
    )
    faults = request.app[STATE].faults
    faults.add(rule)
    return json_response({"queued": rule.describe(), "pending": len(faults.pending())}, status=201)


@routes.get("/_emulator/faults")
async def list_faults(request: web.Request) -> web.Response:
    return json_response({"pending": request.app[STATE].faults.pending()})


@routes.delete("/_emulator/faults")
async def clear_faults(request: web.Request) -> web.Response:
    return json_response({"cleared": request.app[STATE].faults.clear()})


@routes.post("/_emulator/latency")
async def set_latency(request: web.Request) -> web.Response:
    body = await _body(request)
    state = request.app[STATE]
    state.latency_ms = _number(body, "latency_ms", state.latency_ms)
    state.jitter_ms = _number(body, "jitter_ms", 0.0)
    return json_response({"latency_ms": state.latency_ms, "jitter_ms": state.jitter_ms})


@routes.post("/_emulator/served_as")
async def serve_as(request: web.Request) -> web.Response:
    """Make ``model`` report ``served_as`` as the model that served; null clears it."""
    body = await _body(request)
    model, served_as = body.get("model"), body.get("served_as")
    if not isinstance(model, str) or find_model(model) is None:
        raise _BadInput("model must be a catalogue model id")
    if served_as is not None and (not isinstance(served_as, str) or not served_as):
        raise _BadInput("served_as must be a non-empty string or null")
    routing = request.app[STATE].served_as
    if served_as is None or served_as == model:
        routing.pop(model, None)
    else:
        routing[model] = served_as
    return json_response({"served_as": dict(routing)})


@routes.get("/_emulator/calls")
async def list_calls(request: web.Request) -> web.Response:
    """The logged calls, oldest first; ?model= filters, ?limit=N keeps the last N."""
    limit_text = request.query.get("limit")
    try:
        limit = int(limit_text) if limit_text is not None else None
    except ValueError as exc:
        raise _BadInput("limit must be an integer") from exc
    records = request.app[STATE].calls.recent(limit=limit, model=request.query.get("model"))
    return json_response([record.as_json() for record in records])


@routes.delete("/_emulator/calls")
async def reset_calls(request: web.Request) -> web.Response:
    """Empty the log and zero the running totals (and so /key usage)."""
    request.app[STATE].calls.reset()
    return json_response({"status": "ok"})


@routes.get("/_emulator/stats")
async def stats(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return json_response({**state.calls.stats(), "in_flight": state.in_flight})


@routes.post("/_emulator/reset")
async def reset(request: web.Request) -> web.Response:
    """Faults, latency, served_as and the call log all back to a fresh start."""
    request.app[STATE].reset()
    return json_response({"status": "ok"})
