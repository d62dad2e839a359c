"""Real processes for the receiver tests: the ``webhooks`` receiver as its own process (its clock
optionally frozen), and a TCP proxy in front of Postgres that a test can cut and restore."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import redis
import requests

from config import get_settings
from devtools.embedded import free_port
from tests.waiting import wait_until

from .conftest import WEBHOOK_SECRET

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 30

# Runs the receiver's own __main__ with Python's clock frozen at FROZEN_AT, then ticking.
_FROZEN_MAIN = (
    "import os, runpy, sys, freezegun;"
    "freezegun.freeze_time(os.environ['FROZEN_AT'], tick=True).start();"
    "sys.argv = ['webhook_server'] + sys.argv[1:];"
    "runpy.run_module('workers.ops.webhook_server', run_name='__main__')"
)


@dataclass(frozen=True)
class Receiver:
    url: str
    process: subprocess.Popen[bytes]

    def post(self, body: str | bytes | Iterable[bytes], signature: str | None, **kwargs: Any) -> requests.Response:
        headers = {"Content-Type": "application/json"}
        if signature is not None:
            headers["Stripe-Signature"] = signature
        return requests.post(f"{self.url}/stripe/webhook", data=body, headers=headers, timeout=30, **kwargs)


@contextmanager
def receiver_process(
    env: dict[str, str] | None = None, frozen_at: datetime | None = None, host: str | None = "127.0.0.1"
) -> Iterator[Receiver]:
    """``python -m workers.ops.webhook_server`` on a free port, with this process's environment,
    the tests' webhook secret and ``env`` on top; stopped at the end. ``host=None`` leaves the
    address to the receiver's own default."""
    port = free_port()
    settings_env = {
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "STRIPE_WEBHOOK_TOLERANCE": "300",
        "LOG_LEVEL": "WARNING",
    }
    argv = (["--host", host] if host else []) + ["--port", str(port)]
    if frozen_at is None:
        command = [sys.executable, "-m", "workers.ops.webhook_server", *argv]
        extra = {}
    else:
        command = [sys.executable, "-c", _FROZEN_MAIN, *argv]
        extra = {"FROZEN_AT": frozen_at.isoformat()}
    process = subprocess.Popen(command, cwd=ROOT, env=os.environ | settings_env | (env or {}) | extra)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _listens(port) or process.poll() is not None, timeout=START_TIMEOUT_S, what="the receiver")
        assert process.poll() is None, "the receiver exited during start-up"
        yield Receiver(url, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def _listens(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


# The broker, as the tests inspect it.


def queued_messages(*queues: str) -> list[dict[str, Any]]:
    """Every message waiting in ``queues``, whatever its priority bucket (kombu keeps one list per
    priority step, named ``<queue>`` or ``<queue>\\x06\\x16<step>``)."""
    client = redis.Redis.from_url(get_settings().require_redis_url())
    found = []
    for queue in queues:
        for key in client.scan_iter(f"{queue}*"):
            if client.type(key) == b"list":
                found += [json.loads(raw) for raw in client.lrange(key, 0, -1)]
    return found


# A TCP proxy the test can cut: Postgres "stops" for whoever connects through it.


class TcpProxy:
    """Forwards 127.0.0.1:<port> to ``target``. :meth:`cut` closes every connection and refuses
    new ones (as a stopped server would); :meth:`restore` accepts again."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._cut = False
        self.accepted = 0  # connections opened through the proxy so far
        self._thread = threading.Thread(target=self._accept, name="pg-proxy", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._cut:
                client.close()  # as a refused connection looks to a driver: closed at once
                continue
            self.accepted += 1
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        with suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        for sock in (source, sink):
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        with self._lock:
            self._open -= {source, sink}

    def cut(self) -> None:
        self._cut = True
        with self._lock:
            for sock in list(self._open):
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._open.clear()

    def restore(self) -> None:
        self._cut = False

    def close(self) -> None:
        self.cut()
        self._listener.close()
