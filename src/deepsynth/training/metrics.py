"""Training metrics: the history file (one JSON object per logged step) and the summary."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import torch

from deepsynth.atomic_files import write_bytes_atomic, write_json_atomic

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
            # A new file (not truncated in place), so incremental readers see a new inode.
            write_bytes_atomic(self.history, "".join(line + "\n" for line in kept).encode())
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


@dataclass
class _ReadSoFar:
    inode: int
    offset: int = 0
    lines: list[tuple[int, str]] = field(default_factory=list)  # (step, the JSON line)


class HistoryReader:
    """Reads history files incrementally for monitors that poll them: appended lines are
    parsed once (for their step) and kept as text, so serving the history costs a join, not
    a parse and a serialization per request. A rewritten file (a resume) is read again."""

    def __init__(self):
        self._files: dict[Path, _ReadSoFar] = {}
        self._lock = threading.Lock()

    def lines(self, path: Path) -> list[tuple[int, str]]:
        try:
            stat = path.stat()
        except (FileNotFoundError, ValueError):
            return []
        with self._lock:
            known = self._files.get(path)
            if known is None or known.inode != stat.st_ino or stat.st_size < known.offset:
                known = self._files[path] = _ReadSoFar(stat.st_ino)
            if stat.st_size > known.offset:
                with open(path, "rb") as handle:
                    handle.seek(known.offset)
                    data = handle.read(stat.st_size - known.offset)
                complete = data[:data.rfind(b"\n") + 1]  # a line being written waits
                for raw in complete.splitlines():
                    if raw.strip():
                        known.lines.append((json.loads(raw).get("step", 0), raw.decode()))
                known.offset += len(complete)
            return list(known.lines)
