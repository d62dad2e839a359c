"""A faster JSON codec (orjson) for Celery messages, results and events, under the same name
(``json``) and content type (``application/json``) as kombu's own, so nothing else changes.
The Redis transport's envelope (the JSON around each message in a queue list, and in the
unacked hash) goes through the same two functions.


- a stock producer (``Celery(broker=..., backend=...)``, kombu's json) reads what we write and
  we read what it writes: the wire format is the same JSON;
- kombu's type markers are kept: a Decimal, datetime, date, time or bytes value is encoded as
  kombu encodes it (``{"__type__": "decimal", "__value__": "1.5"}``) by kombu's own encoder,
  and a payload holding a marker is decoded by kombu's own decoder;
- everything else (the common case: str, int, float, bool, None, list, tuple, dict) takes
  orjson's path, several times faster than the standard library's in both directions.

Lone surrogates (``"\ud800"``, valid JSON that orjson refuses both ways) fall back to kombu's
own codec, so such a message is read and answered like any other.

One difference, on purpose: a ``uuid.UUID`` is encoded as its string (orjson has no hook for
it), where kombu writes a marker; Celery and this project send ids as strings.
"""

from __future__ import annotations

from typing import Any

import orjson
from kombu.serialization import register, register_json
from kombu.transport import redis as kombu_redis
from kombu.utils import json as kombu_json

from workers.ops.internals import KOMBU, Internal

# The Redis transport encodes its envelope with these two module-level names.
RELIES_ON = (
    Internal("kombu.transport.redis:dumps", KOMBU),
    Internal("kombu.transport.redis:loads", KOMBU),
)

CONTENT_TYPE = "application/json"
CONTENT_ENCODING = "utf-8"
_MARKER = '"__type__"'
_kombu_encoder = kombu_json.JSONEncoder()


def _default(value: Any) -> Any:
    """What orjson cannot encode natively: kombu's own encoding (its markers)."""
    if isinstance(value, tuple):  # a namedtuple: the standard library writes a list
        return list(value)
    return _kombu_encoder.default(value)


def dumps(value: Any) -> str:
    # str, as kombu's codec returns: the Redis transport and the result backend expect text.
    try:
        return orjson.dumps(
            value, default=_default, option=orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS
        ).decode()
    except TypeError:  # a lone surrogate or an integer over 64 bits (orjson refuses them): kombu's encoder
        return kombu_json.dumps(value)


def loads(payload: Any) -> Any:
    # kombu hands a utf-8 payload over as text; bytes-like input is decoded the same way.
    text = payload if isinstance(payload, str) else bytes(payload).decode(CONTENT_ENCODING)
    if _MARKER in text:  # a kombu type marker: kombu's decoder restores the value
        return kombu_json.loads(text)
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        # Valid JSON orjson refuses (a lone surrogate escape "\ud800", NaN, an integer over 64
        # bits) that a stock producer may send: the standard decoder reads it, so the job gets a
        # final state (an invalid_input answer at the boundary), not a lost message.
        return kombu_json.loads(text)


def install() -> None:
    """Register the codec as ``json`` in this process (every Celery process loads it via
    workers/app.py)."""
    register("json", dumps, loads, content_type=CONTENT_TYPE, content_encoding=CONTENT_ENCODING)
    # The Redis transport's envelope goes through the same two functions.
    kombu_redis.dumps, kombu_redis.loads = dumps, loads  # type: ignore[assignment]


def uninstall() -> None:
    """Back to kombu's own json codec (the benchmark measures both)."""
    register_json()
    kombu_redis.dumps, kombu_redis.loads = kombu_json.dumps, kombu_json.loads
