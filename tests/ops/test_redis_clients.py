"""kombu's Redis channel reuses one redis-py client instead of building one per command."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kombu import Connection

from config import get_settings
from workers.ops import redis_clients


@pytest.fixture
def connection(services: None) -> Iterator[Connection]:
    redis_clients.install()
    with Connection(get_settings().redis_url) as conn:
        yield conn


def test_a_channel_sends_every_command_through_one_client(connection: Connection) -> None:
    channel = connection.default_channel
    # When the channel publishes and acks several times
    first = channel._create_client()
    queue = connection.SimpleQueue("litink-test-redis-clients")
    for i in range(3):
        queue.put({"n": i})
    got = [queue.get(timeout=5) for _ in range(3)]
    for message in got:
        message.ack()
    queue.close()
    # Then the messages went through, in order, and the same client served every command
    assert [m.payload["n"] for m in got] == [0, 1, 2]
    assert channel._create_client() is first


def test_a_new_connection_pool_gets_a_new_client(connection: Connection) -> None:
    # Given a channel whose pool was replaced (what a reconnect does)
    channel = connection.default_channel
    before = channel._create_client()
    channel._pool = None
    # Then the next command uses a client on the new pool
    after = channel._create_client()
    assert after is not before
    assert after.connection_pool is channel.pool


def test_the_asynchronous_client_stays_kombus_own(connection: Connection) -> None:
    channel = connection.default_channel
    assert channel._create_client(asynchronous=True) is not channel._create_client(asynchronous=True)
