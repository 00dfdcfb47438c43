"""Progress reports for long work: rows done, total if known, rate and ETA.

Library functions take a ``ProgressCallback``; the CLI shows a progress bar through it and the
job runner persists it. Work that can be stopped takes a ``StopFlag`` checked between rows.
"""

from __future__ import annotations

import time
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
    """Turns counts into Progress with a rate measured over this run only."""

    def __init__(self, total: int | None, already_done: int = 0):
        self.total = total
        self.base = already_done
        self.started = time.monotonic()

    def report(self, stage: str, done: int, pages: int = 0) -> Progress:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = max(done - self.base, 0) / elapsed
        eta = None
        if self.total is not None and rate > 0:
            eta = max(self.total - done, 0) / rate
        return Progress(stage, done, self.total, round(rate, 3),
                        None if eta is None else round(eta, 1), pages)
