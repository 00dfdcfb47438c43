"""Training metrics: the history file (one JSON object per logged step) and the summary."""

from __future__ import annotations

import json
import time
from pathlib import Path

import psutil
import torch

from deepsynth.atomic_files import write_json_atomic

HISTORY_NAME = "metrics_history.jsonl"
SUMMARY_NAME = "metrics.json"


def memory_stats() -> dict[str, float]:
    stats = {"rss_mib": round(psutil.Process().memory_info().rss / 2**20, 1)}
    if torch.cuda.is_available():
        stats["cuda_allocated_mib"] = round(torch.cuda.memory_allocated() / 2**20, 1)
        stats["cuda_reserved_mib"] = round(torch.cuda.memory_reserved() / 2**20, 1)
    return stats


class MetricsLog:
    """Appends to metrics_history.jsonl (kept across resumes, truncated to the resumed step)."""

    def __init__(self, run_dir: Path, resume_step: int | None = None):
        self.history = Path(run_dir) / HISTORY_NAME
        self.summary_path = Path(run_dir) / SUMMARY_NAME
        self.summary: dict = {}
        if resume_step is not None and self.history.exists():
            kept = [line for line in self.history.read_text().splitlines()
                    if line and json.loads(line).get("step", 0) <= resume_step]
            self.history.write_text("".join(line + "\n" for line in kept))
        elif resume_step is None:
            self.history.unlink(missing_ok=True)
        self.started = time.time()

    def write(self, record: dict) -> None:
        with open(self.history, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    def records(self) -> list[dict]:
        if not self.history.exists():
            return []
        return [json.loads(line) for line in self.history.read_text().splitlines() if line]

    def save_summary(self, **values) -> None:
        self.summary.update(values)
        write_json_atomic(self.summary_path, self.summary)
