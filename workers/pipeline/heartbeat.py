"""One heartbeat thread per worker process: it renews the lease of every job the process is
running, with one UPDATE every third of a lease. A job is abandoned when its lease runs out,
which happens only when its process is gone (killed, hung, or cut off from Postgres for a
whole lease)."""

from __future__ import annotations

import logging
import os
import threading

from config import get_settings
from db.session import autocommit
from workers.pipeline import jobs

log = logging.getLogger(__name__)


class Heartbeat:
    """The leases this process holds (job id -> delivery) and the thread that renews them."""

    def __init__(self) -> None:
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._stop = threading.Event()

    def hold(self, job_id: str, delivery: int) -> None:
        with self._lock:
            self._held[job_id] = delivery
            if self._pid != os.getpid():  # first use in this process (or after a fork)
                self._pid = os.getpid()
                self._stop = threading.Event()
                threading.Thread(target=self._run, name="litink-heartbeat", daemon=True).start()

    def release(self, job_id: str) -> None:
        with self._lock:
            self._held.pop(job_id, None)

    def held(self) -> dict[str, int]:
        with self._lock:
            return dict(self._held)

    def beat(self) -> int:
        """Renew every held lease now; returns how many rows were renewed."""
        lease = get_settings().job_lease_seconds
        held = self.held()
        if not held:
            return 0
        with autocommit() as conn:  # one UPDATE for every held lease
            return jobs.heartbeat(conn, held, lease)

    def _run(self) -> None:
        interval = max(1.0, get_settings().job_lease_seconds / 3)
        while not self._stop.wait(interval):
            try:
                self.beat()
            except Exception:  # Postgres away: the next beat tries again
                log.warning("lease heartbeat failed; retrying", exc_info=True)


heartbeat = Heartbeat()
