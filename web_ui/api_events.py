"""The event stream of ``GET /api/jobs/<id>/events``: server-sent events of a job's state and
training metrics (the route is in ``api_jobs``).

Each stream lives at most ``STREAM_SECONDS`` and then closes; browsers' EventSource reconnects
by itself and sends ``Last-Event-ID``, from which the stream continues, so a monitor that
disconnects misses nothing. Streams are counted: they can never take all request threads.
Watching never touches the job.
"""

from __future__ import annotations

import json
import threading
import time

from flask import current_app, request

from deepsynth.jobs.state import JobRecord
from web_ui.app_context import job_view, workspace

STREAM_SECONDS = 25.0
POLL_SECONDS = 0.25
FINAL = ("completed", "failed", "cancelled", "paused", "interrupted", "corrupt")


def stream_slots(threads: int) -> threading.BoundedSemaphore:
    return threading.BoundedSemaphore(max(1, threads // 4))


class Slot:
    """One taken stream slot, given back once: when the response closes, whatever the
    method (a HEAD's body is never read, so a generator's ``finally`` would never run)."""

    def __init__(self, slots: threading.BoundedSemaphore):
        self._slots, self._lock, self._held = slots, threading.Lock(), True

    def release(self) -> None:
        with self._lock:
            if self._held:
                self._held = False
                self._slots.release()


def _events(job_id: str, store, view, history, metrics_from: int, seconds: float):
    yield "retry: 1000\n\n"
    sent_update, sent_lines = None, metrics_from
    deadline = time.monotonic() + seconds
    while True:
        record = store.load(job_id)
        if history is not None:
            for line in history()[sent_lines:]:
                sent_lines += 1
                yield f"id: m{sent_lines}\nevent: metrics\ndata: {line}\n\n"
        if record.updated_at != sent_update:
            sent_update = record.updated_at
            yield f"event: job\ndata: {json.dumps(view(record))}\n\n"
        if record.status in FINAL or time.monotonic() > deadline:
            return
        time.sleep(POLL_SECONDS)


def stream(record: JobRecord):
    """The events of ``record``'s job, from the request's ``Last-Event-ID`` on. The stream
    runs after the request's context is gone, so it gets what it needs now."""
    last = request.headers.get("Last-Event-ID", "")
    metrics_from = int(last[1:]) if last.startswith("m") and last[1:].isdigit() else 0
    history = None
    shown = workspace()
    jobs = current_app.config["JOBS"]
    if record.kind == "train" and record.name:
        run = shown.run_folder(record.name)
        reader = current_app.config["HISTORY_READER"]

        def history():
            return reader.lines(run)
    return _events(record.job_id, jobs.store,
                   lambda r: job_view(r, shown, jobs.queue_places() if r.status == "queued"
                                      else {}), history, metrics_from,
                   current_app.config.get("EVENT_STREAM_SECONDS", STREAM_SECONDS))
