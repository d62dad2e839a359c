"""The orjson codec reads and writes the same JSON as kombu's, under the same name and type."""

from __future__ import annotations

import collections
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, time
from decimal import Decimal

import pytest
from kombu import serialization
from kombu.transport import redis as kombu_redis
from kombu.utils import json as kombu_json

from workers.ops import json_codec

pytestmark = pytest.mark.unit

Point = collections.namedtuple("Point", "x y")

SAMPLES = [
    # A task message body as Celery protocol 2 builds it: (args, kwargs, embed).
    ([], {"user_id": "u-1", "content": "Mara kept the lighthouse. «Ça va»", "notify": None}, {"chord": None}),
    {"cost_usd": Decimal("0.000123"), "at": datetime(2026, 11, 28, 12, 0, tzinfo=UTC), "day": date(2026, 11, 1)},
    {"t": time(12, 30), "raw": b"bytes", "point": Point(1, 2), 7: "an int key", "nested": [{"a": [1.5, True]}]},
]


@pytest.fixture
def installed() -> Iterator[None]:
    json_codec.install()
    yield
    json_codec.install()  # the worker app installs it at import: leave it as it was


@pytest.mark.parametrize("value", SAMPLES)
def test_a_stock_producer_and_the_workers_read_each_others_json(value: object) -> None:
    # Given a value encoded by kombu's own codec (a stock producer) and by ours (a worker)
    ours, stock = json_codec.dumps(value), kombu_json.dumps(value)
    # Then each side decodes the other's bytes to the same Python value, markers included
    assert json_codec.loads(stock) == kombu_json.loads(stock)
    assert kombu_json.loads(ours) == kombu_json.loads(stock)
    assert json_codec.loads(ours.encode()) == kombu_json.loads(stock)


def test_a_uuid_travels_as_its_string() -> None:
    # Given a UUID (orjson has no hook for it; Celery sends ids as strings anyway)
    value = uuid.UUID("12345678-1234-5678-1234-567812345678")
    # Then it arrives as the string form
    assert kombu_json.loads(json_codec.dumps({"id": value})) == {"id": str(value)}


def test_the_codec_keeps_the_json_name_and_content_type(installed: None) -> None:
    # When a message body is serialized with the name Celery is configured with
    content_type, encoding, payload = serialization.dumps({"a": Decimal("1.5")}, serializer="json")
    # Then stock consumers see plain application/json in utf-8, decodable by kombu's own codec
    assert (content_type, encoding) == ("application/json", "utf-8")
    assert kombu_json.loads(payload) == {"a": Decimal("1.5")}
    assert serialization.loads(payload, content_type, encoding, accept={"application/json"}) == {"a": Decimal("1.5")}


def test_uninstall_gives_kombus_codec_back(installed: None) -> None:
    json_codec.uninstall()
    assert serialization.registry._encoders["json"].encoder is kombu_json.dumps
    assert kombu_redis.dumps is kombu_json.dumps
    json_codec.install()
    assert serialization.registry._encoders["json"].encoder is json_codec.dumps


def test_the_redis_transport_envelope_uses_the_codec_and_stays_readable(installed: None) -> None:
    # Given an envelope as the Redis transport writes it (body base64, headers, properties)
    envelope = {"body": "eyJhIjogMX0=", "headers": {"id": "j-1", "eta": None}, "properties": {"priority": 3}}
    # Then the transport writes it with our codec and a stock reader gets the same envelope back
    assert kombu_redis.dumps is json_codec.dumps
    assert kombu_json.loads(kombu_redis.dumps(envelope)) == envelope
    assert kombu_redis.loads(kombu_json.dumps(envelope)) == envelope
