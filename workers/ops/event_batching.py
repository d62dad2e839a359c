"""The worker's consumer, with task events published in batches of up to EVENTS_FLUSH_SECONDS.

Celery buffers task events (received, started, succeeded, failed) and publishes the buffer as
one ``task.multi`` message, but it flushes on the next turn of the event loop: under load that
is about one PUBLISH per event or two (2.6 per job in docs/benchmarks.md), and it also
flushes whenever 24 events are waiting. Flushing every EVENTS_FLUSH_SECONDS (or at
BUFFER_LIMIT events) publishes the same events, in the same order, a fraction of a second
later, in a few messages a second. Flower and any event
receiver see every state as before.

Selected in celeryconfig.py (``worker_consumer``); Celery has no setting for the interval.
"""

from __future__ import annotations

import threading
from typing import Any

from celery.worker.consumer import Consumer as CeleryConsumer

from config import get_settings
from workers.ops.internals import CELERY, KOMBU, Internal

_CONSUMER = "celery.worker.consumer.consumer:Consumer"
RELIES_ON = (
    Internal(f"{_CONSUMER}.on_send_event_buffered", CELERY, "(self)"),
    Internal(f"{_CONSUMER}._flush_events", CELERY, "(self)"),
    Internal(f"{_CONSUMER}.shutdown", CELERY, "(self)"),
    Internal(f"{_CONSUMER}.hub", CELERY, assigned_in="celery.worker.consumer.consumer"),
    Internal(f"{_CONSUMER}.event_dispatcher", CELERY, assigned_in="celery.worker.consumer.events"),
    Internal("celery.events.dispatcher:EventDispatcher.buffer_limit", CELERY, assigned_in="celery.events.dispatcher"),
    Internal("kombu.asynchronous.hub:Hub.call_soon", KOMBU, "(self, callback, *args)"),
    Internal("kombu.asynchronous.hub:Hub.call_later", KOMBU, "(self, delay, callback, *args)"),
)

BUFFER_LIMIT = 256  # events per message at most (about 100 KB)


class Consumer(CeleryConsumer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._flush_lock = threading.Lock()
        self._flush_due = False

    def on_send_event_buffered(self) -> None:
        # Called by whichever thread sent the event; the hub's timer belongs to the loop
        # thread, so the flush is scheduled from there (call_soon is thread-safe).
        if not self.hub:
            return
        with self._flush_lock:
            if self._flush_due:
                return
            self._flush_due = True
        self.hub.call_soon(self._schedule_flush)

    def _schedule_flush(self) -> None:
        if self.event_dispatcher is not None:  # Celery's dispatcher takes no limit setting
            self.event_dispatcher.buffer_limit = BUFFER_LIMIT
        self.hub.call_later(get_settings().events_flush_seconds, self._flush_batch)

    def _flush_batch(self) -> None:
        with self._flush_lock:
            self._flush_due = False
        self._flush_events()

    def shutdown(self) -> None:
        # A warm shutdown publishes what is still waiting for its batch.
        try:
            self._flush_events()
        finally:
            super().shutdown()
