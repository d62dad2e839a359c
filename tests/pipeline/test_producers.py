"""Producers need nothing but celery: the thin client, or a bare Celery app by task name."""

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

BLOCK_HEAVY_IMPORTS = textwrap.dedent(
    """
    import importlib.abc, sys
    BLOCKED = ("sqlalchemy", "openai", "stripe", "psycopg", "config", "db", "workers", "tenacity")
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{name} is blocked in this producer")
    sys.meta_path.insert(0, Block())
    """
)


def run_producer(code: str, redis_url: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", BLOCK_HEAVY_IMPORTS + textwrap.dedent(code)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "REDIS": redis_url},
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_the_thin_client_imports_with_only_celery_available(worker, client):
    # Given a process where sqlalchemy, openai, stripe and the project's server side cannot be imported
    # When it imports the thin client and submits a job
    out = run_producer(
        """
        import os
        from tasks.client import LitinkClient
        c = LitinkClient(os.environ["REDIS"])
        job = c.submit_analysis("producer-1", "A quiet village by the sea.", analysis_type="genre")
        print(c.result(job, timeout=30)["status"])
        """,
        client.app.conf.broker_url,
    )
    # Then the job ran to the end
    assert out.strip() == "succeeded"


def test_a_bare_celery_app_with_stock_settings_can_submit_by_name_and_ping(worker, client):
    # Given a producer that knows only the task name and the queue, with stock settings
    out = run_producer(
        """
        import os
        from celery import Celery
        app = Celery(broker=os.environ["REDIS"], backend=os.environ["REDIS"])
        kwargs = {"user_id": "producer-2", "content": "A storm."}
        job = app.send_task("litink.submit_script", kwargs=kwargs, queue="intake")
        result = job.get(timeout=30)
        print(result["job_id"] == job.id, result["status"])
        print(bool(app.control.ping(timeout=2.0)))
        """,
        client.app.conf.broker_url,
    )
    # Then it gets the final JobResult under its own id, and control commands work
    assert out.split() == ["True", "succeeded", "True"]
