"""The lease heartbeat: one thread per worker process renews the lease of every job the
process runs, with one UPDATE every third of a lease, on a connection of its own
(docs/architecture.md, "Leases")."""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import NamedTuple

from config import get_settings
from db.session import lease_transaction
from workers.pipeline import jobs

log = logging.getLogger(__name__)


class Hold(NamedTuple):
    delivery: int
    renew_until: float  # time.monotonic(): past the task's hard time limit, stop renewing


class Heartbeat:
    """The leases this process holds (job id -> delivery) and the thread that renews them."""

    def __init__(self) -> None:
        self._held: dict[str, Hold] = {}
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._stop = threading.Event()

    def hold(self, job_id: str, delivery: int) -> None:
        # A task past its hard time limit is being killed or is hung: its lease must lapse so
        # that recovery hands the job on, whatever the thread is still doing.
        renew_until = time.monotonic() + get_settings().task_time_limit
        with self._lock:
            self._held[job_id] = Hold(delivery, renew_until)
            if self._pid != os.getpid():  # first use in this process (or after a fork)
                self._pid = os.getpid()
                self._stop = threading.Event()
                threading.Thread(target=self._run, name="litink-heartbeat", daemon=True).start()

    def release(self, job_id: str, delivery: int) -> None:
        """Drop the hold of this delivery only: an older delivery of the same job, finishing
        late in this process after its lease expired, must not drop the newer one's hold."""
        with self._lock:
            if (hold := self._held.get(job_id)) is not None and hold.delivery == delivery:
                del self._held[job_id]

    def held(self) -> dict[str, int]:
        """The holds still to renew (job id -> delivery); expired ones are dropped here."""
        now = time.monotonic()
        with self._lock:
            for job_id in [job_id for job_id, hold in self._held.items() if hold.renew_until <= now]:
                log.warning("lease no longer renewed: past the task time limit", extra={"job_id": job_id})
                del self._held[job_id]
            return {job_id: hold.delivery for job_id, hold in self._held.items()}

    def beat(self) -> int:
        """Renew every held lease now; returns how many rows were renewed."""
        lease = get_settings().job_lease_seconds
        held = self.held()
        if not held:
            return 0
        with lease_transaction() as conn:  # one UPDATE for every held lease
            return jobs.heartbeat(conn, held, lease)

    def _run(self) -> None:
        interval = max(1.0, get_settings().job_lease_seconds / 3)
        while not self._stop.wait(interval):
            try:
                self.beat()
            except Exception:  # Postgres away: the next beat tries again
                log.warning("lease heartbeat failed; retrying", exc_info=True)


heartbeat = Heartbeat()
