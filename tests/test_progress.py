"""Rates and ETAs of long work (deepsynth.progress.RateMeter), on a clock the test moves."""

from __future__ import annotations

from deepsynth.progress import RateMeter


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_rate_after_a_restart_leaves_out_the_start_up():
    """Issue 18 item 5: resumed at step 100 after 10 minutes of loading, the run-wide
    average showed a fraction of the real 2.3 steps/s and an ETA many times too long."""
    clock = Clock()
    meter = RateMeter(total=1000, already_done=100, clock=clock)
    clock.now += 600  # loading the model and its checkpoint again
    report = None
    for step in range(101, 147):  # 46 steps at 2.3 steps/s
        clock.now += 1 / 2.3
        report = meter.report("train", step)
    assert abs(report.rate - 2.3) < 0.05, report
    assert abs(report.eta_seconds - (1000 - 146) / 2.3) < 10, report


def test_the_rate_follows_the_last_window():
    clock = Clock()
    meter = RateMeter(total=None, window=30.0, clock=clock)
    for done in range(1, 121):  # 2 per second for a minute
        clock.now += 0.5
        meter.report("train", done)
    for done in range(121, 181):  # then 1 per second
        clock.now += 1.0
        report = meter.report("train", done)
    assert abs(report.rate - 1.0) < 0.05, report
    assert report.eta_seconds is None
