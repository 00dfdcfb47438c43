"""Training metrics as the loop writes them: the run's history (one record per logged step
or evaluation) and its summary, through :class:`RunFolder`; and memory statistics."""

from __future__ import annotations

import time

import psutil
import torch

from deepsynth.training.run_folder import RunFolder


def memory_stats() -> dict[str, float]:
    stats = {"rss_mib": round(psutil.Process().memory_info().rss / 2**20, 1)}
    if torch.cuda.is_available():
        stats["cuda_allocated_mib"] = round(torch.cuda.memory_allocated() / 2**20, 1)
        stats["cuda_reserved_mib"] = round(torch.cuda.memory_reserved() / 2**20, 1)
    return stats


class MetricsLog:
    """Appends to the run's history (kept across resumes, truncated to the resumed step; a
    fresh run, ``resume_step`` None, starts it empty) and writes its summary."""

    def __init__(self, run: RunFolder, resume_step: int | None = None):
        self.run = run
        self.summary: dict = {}
        run.keep_history_until(resume_step)
        self.started = time.time()

    def write(self, record: dict) -> None:
        self.run.append_history(record)

    def records(self) -> list[dict]:
        return self.run.history()

    def save_summary(self, **values) -> None:
        self.summary.update(values)
        self.run.write_summary(self.summary)
