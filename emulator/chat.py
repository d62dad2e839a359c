"""POST /api/v1/chat/completions: validation, latency, faults, then the answer.

The handler only awaits (sleeps and socket writes), so one event loop can hold
hundreds of slow calls at once, which is what benchmarks against it need.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .auth import require_key
from .calllog import CallRecord
from .catalog import ModelInfo, find_model
from .errors import error_response, json_response
from .exactjson import dumps
from .faults import ERROR_KINDS, FaultContext, FaultRule, fault_error
from .responses import completion_body, new_generation_id, stream_chunk, usage_block
from .state import STATE, EmulatorState
from .writer import compose_reply, count_prompt_tokens, message_text

__all__ = ["chat_completions"]

PROCESSING_COMMENT = b": OPENROUTER PROCESSING\n\n"
_WORDS_PER_CHUNK = 3
_NON_JSON_BODY = (
    "<html><head><title>Bad gateway</title></head>"
    "<body><h1>Upstream answered with something that is not JSON</h1></body></html>"
)


@dataclass
class Call:
    """One validated request and what is known about it so far."""

    generation_id: str
    requested: str
    model: ModelInfo  # the model reported as serving (after served_as)
    messages: list[Any]
    max_tokens: int | None
    stream: bool
    arrived: float  # wall clock, for the log
    started: float  # monotonic, for latency
    referer: str | None
    title: str | None

    def elapsed_ms(self) -> int:
        return int((time.monotonic() - self.started) * 1000)


async def chat_completions(request: web.Request) -> web.StreamResponse:
    denied = require_key(request)
    if denied is not None:
        return denied
    state = request.app[STATE]
    arrived, started = time.time(), time.monotonic()
    try:
        payload = await request.json(loads=_loads_object)
    except ValueError:
        return error_response(400, "Request body must be a JSON object")

    problem = _validation_problem(payload)
    requested = payload.get("model") if isinstance(payload.get("model"), str) else ""
    if problem is None and find_model(requested) is None:
        problem = f"{requested or '(no model)'} is not a valid model ID"
    if problem is not None:
        _record_failure(state, requested, 400, None, arrived, started, payload, request)
        return error_response(400, problem)

    served_id = state.served_as.get(requested, requested)
    call = Call(
        generation_id=new_generation_id(),
        requested=requested,
        model=find_model(served_id) or _renamed(find_model(requested), served_id),
        messages=payload["messages"],
        max_tokens=payload.get("max_tokens"),
        stream=bool(payload.get("stream")),
        arrived=arrived,
        started=started,
        referer=request.headers.get("HTTP-Referer"),
        title=request.headers.get("X-Title"),
    )
    rule = state.faults.take(requested)
    if rule is not None and rule.kind == "hang":
        await asyncio.sleep(rule.delay_s)
    if rule is not None and (rule.kind in ERROR_KINDS or rule.kind == "non_json"):
        await asyncio.sleep(state.delay_seconds())
        return _answer_fault(state, call, rule)
    fault = rule.kind if rule is not None else None
    if call.stream:
        return await _stream(request, state, call, fault)
    await asyncio.sleep(state.delay_seconds())
    body, headers = _complete(state, call, fault)
    return json_response(body, headers=headers)


def _loads_object(text: str) -> dict:
    import json

    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("not an object")
    return value


def _validation_problem(payload: dict) -> str | None:
    """What is wrong with a request body, or None."""
    if not isinstance(payload.get("model"), str) or not payload["model"]:
        return "model is required and must be a string"
    messages = payload.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages must be a non-empty list"
    if not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
        return "every message must be an object with a role"
    max_tokens = payload.get("max_tokens")
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
        return "max_tokens must be a positive integer"
    temperature = payload.get("temperature")
    if temperature is not None and (isinstance(temperature, bool) or not isinstance(temperature, (int, float))):
        return "temperature must be a number"
    return None


def _renamed(model: ModelInfo | None, served_id: str) -> ModelInfo:
    """The requested model's prices reported under an id the catalogue does not list."""
    from dataclasses import replace

    assert model is not None
    return replace(model, id=served_id)


def _fault_context(call: Call) -> FaultContext:
    user_texts = [message_text(m) for m in call.messages if m.get("role") == "user"]
    return FaultContext(
        model=call.requested,
        provider=call.model.provider,
        context_length=call.model.context_length,
        prompt_tokens=count_prompt_tokens(call.messages),
        max_tokens=call.max_tokens,
        user_text=user_texts[-1] if user_texts else "",
    )


def _answer_fault(state: EmulatorState, call: Call, rule: FaultRule) -> web.Response:
    """An error-type or non_json fault: nothing generated, nothing charged."""
    if rule.kind == "non_json":
        _record(state, call, 200, rule.kind, 0, 0, None)
        return web.Response(text=_NON_JSON_BODY, status=200, content_type="text/html")
    answer = fault_error(rule, _fault_context(call))
    _record(state, call, answer.status, rule.kind, 0, 0, None)
    return json_response(answer.body, status=answer.status, headers=answer.headers)


def _outcome(call: Call, fault: str | None):
    """Content, finish reason, token counts and choice error for a call that gets a 200."""
    prompt_tokens = count_prompt_tokens(call.messages)
    if fault == "finish_error":
        error = {
            "code": 502,
            "message": "The provider stopped mid-generation with an error",
            "metadata": {"provider_name": call.model.provider},
        }
        return "", [], "error", prompt_tokens, error
    reply = compose_reply(call.model.id, call.messages, call.max_tokens)
    return reply.content, reply.words, reply.finish_reason, prompt_tokens, None


def _complete(state: EmulatorState, call: Call, fault: str | None):
    content, _, finish_reason, prompt_tokens, error = _outcome(call, fault)
    usage = usage_block(call.model, prompt_tokens, _completion_tokens(content))
    body = completion_body(
        generation_id=call.generation_id,
        model=call.model,
        created=int(call.arrived),
        content=content,
        finish_reason=finish_reason,
        usage=usage,
        error=error,
    )
    _record(state, call, 200, fault, prompt_tokens, usage["completion_tokens"], finish_reason)
    return body, {"X-Generation-Id": call.generation_id}


def _completion_tokens(content: str) -> int:
    return len(content.split()) if content else 0


async def _stream(request: web.Request, state: EmulatorState, call: Call, fault: str | None) -> web.StreamResponse:
    """SSE answer: processing comments while "waiting upstream", content chunks, usage, [DONE]."""
    response = web.StreamResponse(
        status=200,
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Generation-Id": call.generation_id,
        },
    )
    await response.prepare(request)
    await response.write(PROCESSING_COMMENT)
    await asyncio.sleep(state.delay_seconds())
    await response.write(PROCESSING_COMMENT)

    content, words, finish_reason, prompt_tokens, error = _outcome(call, fault)
    usage = usage_block(call.model, prompt_tokens, len(words))
    _record(state, call, 200, fault, prompt_tokens, len(words), finish_reason)
    common = {"generation_id": call.generation_id, "model": call.model, "created": int(call.arrived)}
    for start in range(0, len(words), _WORDS_PER_CHUNK):
        piece = " ".join(words[start:start + _WORDS_PER_CHUNK])
        await _send(response, stream_chunk(content=piece if start == 0 else " " + piece, **common))
    await _send(response, stream_chunk(content="", finish_reason=finish_reason, usage=usage, error=error, **common))
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


async def _send(response: web.StreamResponse, chunk: dict) -> None:
    await response.write(f"data: {dumps(chunk)}\n\n".encode())


def _record(state, call: Call, status, fault, prompt_tokens, completion_tokens, finish_reason) -> None:
    state.calls.add(CallRecord(
        id=call.generation_id,
        model=call.model.id,
        requested_model=call.requested,
        status=status,
        fault=fault,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cost=call.model.cost(prompt_tokens, completion_tokens),
        stream=call.stream,
        at=call.arrived,
        latency_ms=call.elapsed_ms(),
        finish_reason=finish_reason,
        provider=call.model.provider,
        referer=call.referer,
        title=call.title,
    ))


def _record_failure(state, requested, status, fault, arrived, started, payload, request) -> None:
    """Log a call rejected before any model was chosen."""
    state.calls.add(CallRecord(
        id=new_generation_id(),
        model=requested,
        requested_model=requested,
        status=status,
        fault=fault,
        prompt_tokens=0,
        completion_tokens=0,
        cost=call_cost_zero(),
        stream=bool(payload.get("stream")) if isinstance(payload, dict) else False,
        at=arrived,
        latency_ms=int((time.monotonic() - started) * 1000),
        finish_reason=None,
        provider=None,
        referer=request.headers.get("HTTP-Referer"),
        title=request.headers.get("X-Title"),
    ))


def call_cost_zero():
    from decimal import Decimal

    return Decimal(0)
