"""POST /api/v1/chat/completions: validation, faults, the charge, latency, then the answer.

The handler only awaits (sleeps and socket writes), so one event loop can hold
hundreds of slow calls at once, which is what benchmarks against it need.

A call is charged (logged with its cost, added to its key's /key figures) the moment the
emulator decides to answer it, before any latency or hang: like a real provider, which
bills a generation whether or not the client is still there to read it. So a call the
client abandoned (a read timeout, a killed worker) costs what an answered one does.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from aiohttp import web

from .auth import bearer_token, require_key
from .calllog import CallRecord
from .catalog import STRUCTURED_OUTPUTS, ModelInfo, find_model
from .errors import error_response, json_response
from .exactjson import dumps
from .faults import ERROR_KINDS, FaultContext, FaultRule, fault_error
from .responses import completion_body, new_generation_id, stream_chunk, usage_block
from .state import STATE, EmulatorState
from .writer import compose_reply, compose_structured, count_prompt_tokens, message_text

__all__ = ["PROCESSING_COMMENT", "chat_completions"]

PROCESSING_COMMENT = b": OPENROUTER PROCESSING\n\n"
_WORDS_PER_CHUNK = 3
_NON_JSON_BODY = (
    "<html><head><title>Bad gateway</title></head>"
    "<body><h1>Upstream answered with something that is not JSON</h1></body></html>"
)


@dataclass
class Call:
    """One request as the handler sees it: who asked for what, and when."""

    generation_id: str
    requested: str
    model: ModelInfo | None  # the model reported as serving (after served_as); None if unknown
    messages: list[Any]
    max_tokens: int | None
    stream: bool
    arrived: float  # wall clock, for the log
    started: float  # monotonic, for the measured latency
    referer: str | None
    title: str | None
    key: str | None  # the bearer key, which pays for the call
    json_schema: dict[str, Any] | None = None  # response_format json_schema, when the model honours it


@dataclass(frozen=True)
class Outcome:
    """What a 200 answer carries."""

    words: list[str]
    finish_reason: str
    prompt_tokens: int
    error: dict[str, Any] | None = None
    text: str | None = None  # a structured (JSON) answer, whose words only count its tokens

    @property
    def content(self) -> str:
        return self.text if self.text is not None else " ".join(self.words)


async def chat_completions(request: web.Request) -> web.StreamResponse:
    denied = require_key(request)
    if denied is not None:
        return denied
    state = request.app[STATE]
    state.in_flight += 1  # one event loop: no lock needed
    try:
        return await _chat_completion(request, state)
    finally:
        state.in_flight -= 1


async def _chat_completion(request: web.Request, state: EmulatorState) -> web.StreamResponse:
    arrived, started = time.time(), time.monotonic()
    try:
        payload = json.loads(await request.text())
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        return error_response(400, "Request body must be a JSON object")

    call = _new_call(state, request, payload, arrived, started)
    problem = _validation_problem(payload)
    if problem is None and call.model is None:
        problem = f"{call.requested} is not a valid model ID"
    if problem is not None:
        _record(state, call, 400, None, None)
        return error_response(400, problem)

    rule = state.faults.take(call.requested)
    if rule is not None and (rule.kind in ERROR_KINDS or rule.kind == "non_json"):
        await asyncio.sleep(state.delay_seconds())
        return _answer_fault(state, call, rule)
    fault = rule.kind if rule is not None else None
    outcome = _outcome(call, fault)
    record = _record(state, call, 200, fault, outcome)  # charged now, read or not
    try:
        if rule is not None and rule.kind == "hang":
            await asyncio.sleep(rule.delay_s)
        if call.stream:
            return await _stream(request, state, call, outcome)
        await asyncio.sleep(state.delay_seconds())
        return _complete(call, outcome)
    finally:
        record.latency_ms = _elapsed_ms(call)


def _new_call(state: EmulatorState, request: web.Request, payload: dict, arrived: float, started: float) -> Call:
    requested = payload.get("model") if isinstance(payload.get("model"), str) else ""
    messages = payload.get("messages")
    return Call(
        generation_id=new_generation_id(),
        requested=requested,
        model=_serving_model(state, requested),
        messages=messages if isinstance(messages, list) else [],
        max_tokens=payload.get("max_tokens"),
        stream=bool(payload.get("stream")),
        arrived=arrived,
        started=started,
        referer=request.headers.get("HTTP-Referer"),
        title=request.headers.get("X-Title"),
        key=bearer_token(request),
        json_schema=_json_schema(payload, requested),
    )


def _json_schema(payload: dict, requested: str) -> dict[str, Any] | None:
    """The schema of a ``response_format: {"type": "json_schema"}`` the model honours, else None."""
    response_format = payload.get("response_format")
    if requested not in STRUCTURED_OUTPUTS or not isinstance(response_format, dict):
        return None
    if response_format.get("type") != "json_schema" or not isinstance(response_format.get("json_schema"), dict):
        return None
    schema = response_format["json_schema"].get("schema")
    return schema if isinstance(schema, dict) else None


def _serving_model(state: EmulatorState, requested: str) -> ModelInfo | None:
    """The model reported as serving: the requested one unless served_as redirects it.

    A served_as id found in the catalogue is priced as that model; an unlisted one keeps
    the requested model's prices under the new name.
    """
    model = find_model(requested)
    if model is None:
        return None
    served_id = state.served_as.get(requested, requested)
    return find_model(served_id) or replace(model, id=served_id)


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
    if max_tokens is not None and not (_is_number(max_tokens, int) and max_tokens >= 1):
        return "max_tokens must be a positive integer"
    temperature = payload.get("temperature")
    if temperature is not None and not _is_number(temperature, (int, float)):
        return "temperature must be a number"
    return None


def _is_number(value: Any, types: type | tuple[type, ...]) -> bool:
    """isinstance for JSON numbers, where True and False must not pass as 1 and 0."""
    return isinstance(value, types) and not isinstance(value, bool)


def _answer_fault(state: EmulatorState, call: Call, rule: FaultRule) -> web.Response:
    """An error-type or non_json fault: nothing generated, nothing charged."""
    if rule.kind == "non_json":
        _record(state, call, 200, rule.kind, None)
        return web.Response(text=_NON_JSON_BODY, status=200, content_type="text/html")
    answer = fault_error(rule, _fault_context(call))
    _record(state, call, answer.status, rule.kind, None)
    return json_response(answer.body, status=answer.status, headers=answer.headers)


def _fault_context(call: Call) -> FaultContext:
    assert call.model is not None
    user_texts = [message_text(m) for m in call.messages if m.get("role") == "user"]
    return FaultContext(
        model=call.requested,
        provider=call.model.provider,
        context_length=call.model.context_length,
        prompt_tokens=count_prompt_tokens(call.messages),
        max_tokens=call.max_tokens,
        user_text=user_texts[-1] if user_texts else "",
    )


def _outcome(call: Call, fault: str | None) -> Outcome:
    """The reply, or for finish_error an empty reply whose choice carries an error."""
    assert call.model is not None
    prompt_tokens = count_prompt_tokens(call.messages)
    if fault == "finish_error":
        error = {
            "code": 502,
            "message": "The provider stopped mid-generation with an error",
            "metadata": {"provider_name": call.model.provider},
        }
        return Outcome([], "error", prompt_tokens, error)
    if call.json_schema is not None and not call.stream:
        structured = compose_structured(call.model.id, call.messages, call.json_schema, call.max_tokens)
        return Outcome(structured.words, structured.finish_reason, prompt_tokens, text=structured.content)
    reply = compose_reply(call.model.id, call.messages, call.max_tokens)
    if fault == "unstorable":  # text Postgres cannot hold: a NUL byte and a lone surrogate
        words = [*reply.words[:-1], reply.words[-1] + "\x00", "\ud800"]
        return Outcome(words, reply.finish_reason, prompt_tokens)
    return Outcome(reply.words, reply.finish_reason, prompt_tokens)


def _complete(call: Call, outcome: Outcome) -> web.Response:
    assert call.model is not None
    body = completion_body(
        generation_id=call.generation_id,
        model=call.model,
        created=int(call.arrived),
        content=outcome.content,
        finish_reason=outcome.finish_reason,
        usage=usage_block(call.model, outcome.prompt_tokens, len(outcome.words)),
        error=outcome.error,
    )
    return json_response(body, headers={"X-Generation-Id": call.generation_id})


async def _stream(request: web.Request, state: EmulatorState, call: Call, outcome: Outcome) -> web.StreamResponse:
    """SSE answer: processing comments while "waiting upstream", content chunks, usage, [DONE]."""
    assert call.model is not None
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

    common = {"generation_id": call.generation_id, "model": call.model, "created": int(call.arrived)}
    words = outcome.words
    for start in range(0, len(words), _WORDS_PER_CHUNK):
        piece = " ".join(words[start : start + _WORDS_PER_CHUNK])
        await _send(response, stream_chunk(content=piece if start == 0 else " " + piece, **common))
    usage = usage_block(call.model, outcome.prompt_tokens, len(words))
    await _send(
        response,
        stream_chunk(content="", finish_reason=outcome.finish_reason, usage=usage, error=outcome.error, **common),
    )
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


async def _send(response: web.StreamResponse, chunk: dict) -> None:
    await response.write(f"data: {dumps(chunk)}\n\n".encode())


def _elapsed_ms(call: Call) -> int:
    return int((time.monotonic() - call.started) * 1000)


def _record(state: EmulatorState, call: Call, status: int, fault: str | None, outcome: Outcome | None) -> CallRecord:
    """Log the call and charge its key. Only a 200 with an outcome costs anything."""
    prompt_tokens = outcome.prompt_tokens if outcome else 0
    completion_tokens = len(outcome.words) if outcome else 0
    cost = call.model.cost(prompt_tokens, completion_tokens) if call.model else Decimal(0)
    record = CallRecord(
        id=call.generation_id,
        model=call.model.id if call.model else call.requested,
        requested_model=call.requested,
        status=status,
        fault=fault,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cost=cost,
        stream=call.stream,
        at=call.arrived,
        latency_ms=_elapsed_ms(call),
        finish_reason=outcome.finish_reason if outcome else None,
        provider=call.model.provider if call.model else None,
        referer=call.referer,
        title=call.title,
        key=call.key,
    )
    state.calls.add(record)
    return record
