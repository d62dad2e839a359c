"""Serves workers/ops/metrics.py to Prometheus: an HTTP ``/metrics`` endpoint in each worker.

With ``PROMETHEUS_MULTIPROC_DIR`` set (prefork, or several worker processes on a host) the
endpoint sums every process's samples; otherwise it serves this process's registry. A second
process on the same ``METRICS_PORT`` logs a warning and runs without one. Set-up:
docs/operations.md, "Prometheus metrics".
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from prometheus_client import CollectorRegistry, multiprocess, start_http_server

from config import get_settings
from config.settings import LOCAL_ADDRESS

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
DEFAULT_ADDR = LOCAL_ADDRESS  # unauthenticated: reachable from elsewhere only if METRICS_HOST says so

_lock = threading.Lock()
_server: Any = None


def multiprocess_dir() -> str | None:
    # prometheus_client reads this variable itself, at import; we follow the same switch.
    return os.environ.get(MULTIPROC_ENV) or None


def start_metrics_server(port: int, addr: str = DEFAULT_ADDR) -> Any:
    """Serve ``/metrics`` on ``port`` in a daemon thread and return the server (its
    ``shutdown()`` stops it). Raises ``OSError`` when the port is taken."""
    path = multiprocess_dir()
    if path:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=path)
        server, _thread = start_http_server(port, addr, registry=registry)
    else:
        server, _thread = start_http_server(port, addr)
    log.info(
        "metrics on http://%s:%d/metrics (%s)", addr, server.server_port, "multiprocess" if path else "single process"
    )
    return server


def _on_worker_init(sender: Any = None, **_: Any) -> None:
    """Start the endpoint once per process, in the worker's main process."""
    global _server
    port = get_settings().metrics_port
    if port == 0:
        return
    with _lock:
        if _server is not None:  # a second worker in one process (tests): keep the first endpoint
            return
        try:
            _server = start_metrics_server(port, get_settings().metrics_host)
        except OSError as exc:
            log.warning(
                "metrics endpoint not started: port %d unavailable (%s); set METRICS_PORT per process "
                "or PROMETHEUS_MULTIPROC_DIR",
                port,
                exc,
            )


def _on_process_shutdown(pid: int | None = None, **_: Any) -> None:
    path = multiprocess_dir()
    if path:
        multiprocess.mark_process_dead(pid or os.getpid(), path)


def install(app: Any) -> None:
    """Wire the endpoint to ``app``'s workers: start it on ``worker_init``; in multiprocess
    mode, mark each prefork child dead when it exits."""
    from celery import signals

    def on_worker_init(sender: Any = None, **kwargs: Any) -> None:
        if getattr(sender, "app", app) is app:
            _on_worker_init(sender, **kwargs)

    # dispatch_uid: installing twice for one app connects once.
    signals.worker_init.connect(on_worker_init, weak=False, dispatch_uid=f"litink.metrics_server.init.{id(app)}")
    signals.worker_process_shutdown.connect(
        _on_process_shutdown, weak=False, dispatch_uid="litink.metrics_server.process_shutdown"
    )
