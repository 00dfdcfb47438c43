"""Ctrl-C and SIGTERM as a cooperative stop: the first asks the work to stop at its next
safe point (keeping what is done), the second aborts."""

from __future__ import annotations

import signal
import sys
import threading


class StopOnSignal:
    def __init__(self, what: str = "the rows in flight"):
        self.event = threading.Event()
        self.what = what

    def __enter__(self) -> StopOnSignal:
        self._previous = {s: signal.signal(s, self._handle)
                          for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def _handle(self, signum: int, frame: object) -> None:
        if self.event.is_set():
            raise KeyboardInterrupt
        print(f"\nstopping after {self.what} (again to abort)...", file=sys.stderr)
        self.event.set()

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
