"""The emulator holds hundreds of slow calls at once on one event loop."""

from __future__ import annotations

import asyncio
import threading
import time

import aiohttp
import pytest

from tests.waiting import wait_until

pytestmark = pytest.mark.unit  # no Postgres, no Redis

CALLS = 200
LATENCY_MS = 200


async def _send_all(base_url: str) -> list[int]:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(index: int) -> int:
            messages = [{"role": "user", "content": f"scene {index}"}]
            body = {"model": "openai/gpt-4o-mini", "messages": messages}
            async with session.post(
                f"{base_url}/chat/completions", json=body, headers={"Authorization": "Bearer test"}
            ) as response:
                payload = await response.json()
                return response.status if payload["choices"][0]["message"]["content"] else -1

        return await asyncio.gather(*(one(index) for index in range(CALLS)))


def test_two_hundred_slow_calls_run_concurrently(emu):
    # Given 200 ms of latency on every call
    emu.control.set_latency(LATENCY_MS)
    # When 200 calls are sent at once
    started = time.monotonic()
    statuses = asyncio.run(_send_all(emu.base_url))
    elapsed = time.monotonic() - started
    # Then every one succeeds and the emulator saw all 200
    assert statuses == [200] * CALLS
    assert emu.control.stats()["calls"] == CALLS
    # And (a generous sanity bound) they overlapped instead of queueing: serial would take 40 s
    assert elapsed < CALLS * LATENCY_MS / 1000 / 4


def test_stats_count_the_calls_being_answered_until_each_is_done(emu, raw):
    # Given a call held 500 ms by the emulator
    emu.control.set_latency(500)
    sender = threading.Thread(target=raw.chat)
    sender.start()
    # Then it is in flight while held, and no longer once answered
    wait_until(lambda: emu.control.stats()["in_flight"] == 1, timeout=5, what="the call in flight")
    sender.join(10)
    assert emu.control.stats()["in_flight"] == 0
    assert emu.control.stats()["calls"] == 1
