"""Progress reports for long work: rows done, total if known, rate and ETA.

Library functions take a ``ProgressCallback``; the CLI shows a progress bar through it and the
job runner persists it. Work that can be stopped takes a ``StopFlag`` checked between rows.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass


@dataclass
class Progress:
    stage: str  # what is being done, for example "train" (the split) or "upload"
    done: int
    total: int | None
    rate: float  # units per second in this run
    eta_seconds: float | None
    pages: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


ProgressCallback = Callable[[Progress], None]
StopFlag = Callable[[], bool]


def no_progress(_: Progress) -> None:
    """The null progress callback."""


def never_stop() -> bool:
    return False


class RateMeter:
    """Turns counts into Progress with a rate measured over this run's last ``window``
    seconds: a run-wide average counted what came before the first unit (loading the model
    again after a restart, say) as if the work were that slow, so a resumed run at 2.3
    steps/s showed 0.34/s and an ETA seven times too long. ``clock``: monotonic seconds."""

    def __init__(self, total: int | None, already_done: int = 0, window: float = 30.0,
                 clock: Callable[[], float] = time.monotonic):
        self.total = total
        self.window = window
        self.clock = clock
        # (time, count) points; the first is the start, replaced once work is reported.
        self.points: deque[tuple[float, int]] = deque([(clock(), already_done)])
        self.measured = False

    def report(self, stage: str, done: int, pages: int = 0) -> Progress:
        now = self.clock()
        if not self.measured and done > self.points[0][1]:
            # The first unit done: time from here on; before it was start-up, not work.
            self.points = deque([(now, done)])
            self.measured = True
        else:
            self.points.append((now, done))
        while len(self.points) > 2 and now - self.points[1][0] >= self.window:
            self.points.popleft()
        first_time, first_done = self.points[0]
        rate = max(done - first_done, 0) / max(now - first_time, 1e-9)
        eta = None
        if self.total is not None and rate > 0:
            eta = max(self.total - done, 0) / rate
        return Progress(stage, done, self.total, round(rate, 3),
                        None if eta is None else round(eta, 1), pages)
