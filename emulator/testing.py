"""Run an emulator inside the current process, for tests and the demo.

The server gets its own event loop in a daemon thread, so synchronous test code (and
the blocking openai SDK) can call it over real HTTP on a free port.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from aiohttp import web

from .control import EmulatorControl
from .server import API_PREFIX, LISTEN_BACKLOG, create_app

__all__ = ["RunningEmulator", "running_emulator"]

_START_TIMEOUT_S = 10.0
_SHUTDOWN_GRACE_S = 1.0  # in-flight calls (a "hang") get this long before being cancelled


@dataclass(frozen=True)
class RunningEmulator:
    """Where a running emulator listens, and a control client for it."""

    host: str
    port: int
    root_url: str  # http://host:port
    base_url: str  # http://host:port/api/v1, what an OpenAI-compatible client wants
    control: EmulatorControl


@contextmanager
def running_emulator(
    host: str = "127.0.0.1", port: int = 0, latency_ms: float = 0, jitter_ms: float = 0
) -> Iterator[RunningEmulator]:
    """Start an emulator (port 0 = any free port), yield it, and stop it on exit."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(
        create_app(latency_ms=latency_ms, jitter_ms=jitter_ms),
        shutdown_timeout=_SHUTDOWN_GRACE_S,
        access_log=None,
    )
    ready = threading.Event()
    outcome: dict[str, object] = {}

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, host, port, backlog=LISTEN_BACKLOG)
            loop.run_until_complete(site.start())
            outcome["port"] = runner.addresses[0][1]
        except BaseException as exc:  # reported to the caller's thread below
            outcome["error"] = exc
            ready.set()
            loop.close()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.close()

    thread = threading.Thread(target=run, name="openrouter-emulator", daemon=True)
    thread.start()
    if not ready.wait(_START_TIMEOUT_S):
        raise RuntimeError("emulator did not start in time")
    if "error" in outcome:
        error = outcome["error"]
        raise RuntimeError(f"emulator failed to start: {error!r}") from error  # type: ignore[misc]

    bound_port = int(outcome["port"])  # type: ignore[arg-type]
    root_url = f"http://{host}:{bound_port}"
    emulator = RunningEmulator(host, bound_port, root_url, root_url + API_PREFIX, EmulatorControl(root_url))
    _wait_until_healthy(emulator.control)
    try:
        yield emulator
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=_SHUTDOWN_GRACE_S + 10)


def _wait_until_healthy(control: EmulatorControl) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if control.health():
            return
        time.sleep(0.02)
    raise RuntimeError("emulator started but does not answer its health check")
