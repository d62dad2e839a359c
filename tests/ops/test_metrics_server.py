"""The worker's /metrics endpoint, in one process and across prefork-style processes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import pytest
from celery import Celery, signals
from prometheus_client.parser import text_string_to_metric_families

from config import Settings
from devtools.embedded import free_port
from workers.ops import metrics, metrics_server

ROOT = Path(__file__).resolve().parents[2]


class FakeWorker:
    """What a worker_init receiver sees of the WorkController: its app (and a hash)."""

    def __init__(self, app: Celery) -> None:
        self.app = app


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        body = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def test_the_endpoint_serves_a_counter_that_was_incremented():
    # Given a running endpoint
    port = free_port()
    server = metrics_server.start_metrics_server(port, addr="127.0.0.1")
    try:
        # When a job counter is incremented
        metrics.jobs.labels(tier="basic", kind="script", status="succeeded").inc()
        metrics.llm_cost.labels(tier="basic", model="scrape/test").inc(0.25)
        # Then a scrape shows the samples
        samples = scrape(port)
        key = ("litink_jobs_total", (("kind", "script"), ("status", "succeeded"), ("tier", "basic")))
        assert samples[key] >= 1
        assert samples[("litink_llm_cost_usd_total", (("model", "scrape/test"), ("tier", "basic")))] == 0.25
    finally:
        server.shutdown()
        server.server_close()


def test_a_taken_port_is_an_error_for_the_caller():
    port = free_port()
    server = metrics_server.start_metrics_server(port, addr="127.0.0.1")
    try:
        with pytest.raises(OSError):
            metrics_server.start_metrics_server(port, addr="127.0.0.1")
    finally:
        server.shutdown()
        server.server_close()


def test_install_starts_the_endpoint_when_its_worker_starts(monkeypatch):
    # Given an app with the endpoint installed, and a free metrics port
    port = free_port()
    monkeypatch.setattr(metrics_server, "get_settings", lambda: Settings(metrics_port=port))
    monkeypatch.setattr(metrics_server, "_server", None)
    app, other = Celery("metrics-test"), Celery("another-app")
    metrics_server.install(app)
    metrics_server.install(app)  # twice: still one receiver
    try:
        # When another app's worker starts, nothing is started
        signals.worker_init.send(sender=FakeWorker(other))
        assert metrics_server._server is None
        # When this app's worker starts
        signals.worker_init.send(sender=FakeWorker(app))
        # Then the endpoint answers with the workers' metrics
        metrics.rejections.labels(tier="free", reason="rate_limited").inc()
        assert scrape(port)[("litink_rejections_total", (("reason", "rate_limited"), ("tier", "free")))] >= 1
        server = metrics_server._server
        assert server is not None and server.server_port == port
        # And a second worker in the same process keeps the first endpoint
        signals.worker_init.send(sender=FakeWorker(app))
        assert metrics_server._server is server
    finally:
        if metrics_server._server is not None:
            metrics_server._server.shutdown()
            metrics_server._server.server_close()


def test_port_zero_turns_the_endpoint_off(monkeypatch):
    monkeypatch.setattr(metrics_server, "get_settings", lambda: Settings(metrics_port=0))
    monkeypatch.setattr(metrics_server, "_server", None)
    app = Celery("metrics-off")
    metrics_server.install(app)
    signals.worker_init.send(sender=FakeWorker(app))
    assert metrics_server._server is None


MULTIPROCESS_SCRIPT = textwrap.dedent(
    """
    import multiprocessing, sys, urllib.request
    from workers.ops import metrics
    from workers.ops import metrics_server

    def child():
        metrics.llm_calls.labels(model="mp/test", outcome="ok").inc()
        metrics_server._on_process_shutdown()

    if __name__ == "__main__":
        server = metrics_server.start_metrics_server(int(sys.argv[1]), addr="127.0.0.1")
        ctx = multiprocessing.get_context("fork")
        children = [ctx.Process(target=child) for _ in range(2)]
        for p in children:
            p.start()
        for p in children:
            p.join()
        metrics.llm_calls.labels(model="mp/test", outcome="ok").inc()
        with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=5) as r:
            sys.stdout.write(r.read().decode())
        server.shutdown()
    """
)


def test_in_multiprocess_mode_the_endpoint_sums_every_process(tmp_path):
    # Given PROMETHEUS_MULTIPROC_DIR set before Python starts, as in a prefork deployment
    script = tmp_path / "mp.py"
    script.write_text(MULTIPROCESS_SCRIPT)
    mp_dir = tmp_path / "prom"
    mp_dir.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(mp_dir), "PYTHONPATH": str(ROOT)}
    # When two forked children and the parent each count one call
    out = subprocess.run(
        [sys.executable, str(script), str(free_port())], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    # Then the parent's endpoint reports all three
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(out.stdout)
        for s in family.samples
    }
    assert samples[("litink_llm_calls_total", (("model", "mp/test"), ("outcome", "ok")))] == 3
