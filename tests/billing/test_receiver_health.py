"""The receiver's /health cannot be turned against Stripe's deliveries: it listens where the
receiver listens (127.0.0.1 unless told otherwise), answers from the last background probe
(no connection per request) and is rate limited."""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
import requests
from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url

from config import get_settings

from .conftest import Events, sign
from .processes import TcpProxy, receiver_process

HEALTH_REQUESTS = 1000
EVENTS = 20
CLIENT_THREADS = 32


@contextmanager
def _proxied(url: str, default_port: int) -> Iterator[tuple[str, TcpProxy]]:
    """``url`` rewritten to go through a TcpProxy that counts the connections opened."""
    direct = make_url(url)
    proxy = TcpProxy(direct.host or "127.0.0.1", direct.port or default_port)
    try:
        yield direct.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False), proxy
    finally:
        proxy.close()


def test_a_flood_of_health_checks_costs_no_genuine_event_its_first_delivery(
    services: None, events: Events, db: Connection
) -> None:
    settings = get_settings()
    with (
        _proxied(settings.require_database_url(), 5432) as (database_url, postgres),
        _proxied(settings.require_redis_url(), 6379) as (redis_url, broker),
        receiver_process(env={"DATABASE_URL": database_url, "REDIS_URL": redis_url}) as receiver,
    ):
        opened_before = (postgres.accepted, broker.accepted)
        bodies = [
            events.checkout_completed(f"user-h{i}", "basic", subscription=f"sub_h{i}", customer=f"cus_h{i}")
            for i in range(EVENTS)
        ]

        # When a thousand /health requests arrive while Stripe delivers twenty events among them
        with ThreadPoolExecutor(CLIENT_THREADS) as pool:
            checks, deliveries = [], []
            for i in range(HEALTH_REQUESTS):
                checks.append(pool.submit(requests.get, f"{receiver.url}/health", timeout=30))
                if i % (HEALTH_REQUESTS // EVENTS) == 0:
                    body = bodies[len(deliveries)]
                    deliveries.append(pool.submit(receiver.post, body, sign(body)))
            answers = [c.result() for c in checks]
            first = [d.result() for d in deliveries]
        opened = (postgres.accepted - opened_before[0], broker.accepted - opened_before[1])

    # Then every event was kept on its first delivery
    assert [a.status_code for a in first] == [200] * EVENTS
    assert all(a.json()["new"] for a in first)
    assert db.execute(text("SELECT count(*) FROM stripe_events")).scalar() == EVENTS

    # And /health opened nothing per request (the inbox pool holds at most 15 connections; the
    # broker's producer pool a few), answered from what it knew, and beyond its rate with 429
    assert opened[0] <= 15 and opened[1] <= 10, opened
    statuses = Counter(a.status_code for a in answers)
    assert set(statuses) <= {200, 429} and statuses[200] > 0 and statuses[429] > 0, statuses
    assert all(a.json()["database"] == "ok" for a in answers if a.status_code == 200)
    assert all(a.headers.get("Retry-After") for a in answers if a.status_code == 429)


def _outside_address() -> str | None:
    """This machine's address on its default route, if it has one other than loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))  # no packet is sent: it only picks a route
        except OSError:
            return None
        address = str(probe.getsockname()[0])
    return None if address.startswith("127.") else address


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def test_by_default_the_receiver_and_its_health_listen_on_loopback_only(services: None) -> None:
    outside = _outside_address()
    if outside is None:
        pytest.skip("this machine has no address but loopback")

    with receiver_process(host=None) as receiver:
        port = int(receiver.url.rsplit(":", 1)[1])
        assert requests.get(f"{receiver.url}/health", timeout=10).status_code == 200
        assert not _accepts(outside, port)
