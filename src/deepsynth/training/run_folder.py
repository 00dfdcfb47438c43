"""A training run's folder, ``models/NAME``: the one module that knows its layout.

::

    training_config.json    the resolved configuration of the run (every preset value filled)
    command.txt             the ``deepsynth train`` command that reproduces it
    parameters.txt          the parameter table (total and trainable, per part)
    metrics_history.jsonl   one JSON object per logged step or evaluation, appended
    metrics.json            the summary, rewritten at the end (status, steps, best metrics)
    eval_samples/step-N.json  the probe's predictions at each evaluation
    checkpoints/step-N/     resumable checkpoints (trainer_state.json, weights, optimizer)
    final/                  the final model (weights or adapter, tokenizer, card, config)

Writers (the loop, the metrics log, the evaluator, checkpoints) and readers (the API, the
jobs, the CLI) all go through :class:`RunFolder`; a folder written by an earlier version has
the same layout and reads the same way. Unreadable files read as missing, never as a crash.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path

from deepsynth.atomic_files import write_bytes_atomic, write_json_atomic

CONFIG_NAME = "training_config.json"
COMMAND_NAME = "command.txt"
PARAMETERS_NAME = "parameters.txt"
HISTORY_NAME = "metrics_history.jsonl"
SUMMARY_NAME = "metrics.json"
SAMPLES_DIR = "eval_samples"
CHECKPOINTS_DIR = "checkpoints"
CHECKPOINT_STATE_NAME = "trainer_state.json"
CHECKPOINT_WEIGHTS_NAME = "trainable.safetensors"
CHECKPOINT_TRAINING_STATE_NAME = "training_state.pt"
FINAL_DIR = "final"
_STEP = re.compile(r"^step-(\d{1,12})$")


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def step_name(step: int) -> str:
    return f"step-{step:06d}"


def step_of(name: str) -> int | None:
    """The step of ``step-N`` (a checkpoint folder, an evaluation file's stem), else None."""
    match = _STEP.match(name)
    return int(match.group(1)) if match else None


class RunFolder:
    def __init__(self, path: Path | str):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def final(self) -> Path:
        return self.path / FINAL_DIR

    @property
    def history_path(self) -> Path:
        return self.path / HISTORY_NAME

    @property
    def summary_path(self) -> Path:
        return self.path / SUMMARY_NAME

    def exists(self) -> bool:
        return self.path.is_dir()

    def has_final(self) -> bool:
        return self.final.is_dir()

    # What the run starts with.
    def write_start(self, config: dict, command: str, parameters: str) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.path / CONFIG_NAME, config)
        write_bytes_atomic(self.path / COMMAND_NAME, (command + "\n").encode())
        write_bytes_atomic(self.path / PARAMETERS_NAME, (parameters + "\n").encode())

    def config(self) -> dict | None:
        data = _read_json(self.path / CONFIG_NAME)
        return data if isinstance(data, dict) else None

    def command(self) -> str | None:
        try:
            return (self.path / COMMAND_NAME).read_text(encoding="utf-8").strip()
        except OSError:
            return None

    # Metrics.
    def summary(self) -> dict:
        data = _read_json(self.summary_path)
        return data if isinstance(data, dict) else {}

    def write_summary(self, summary: dict) -> None:
        write_json_atomic(self.summary_path, summary)

    def append_history(self, record: dict) -> None:
        with open(self.history_path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    def history(self) -> list[dict]:
        """Every readable record of the history (a line being written is left out)."""
        try:
            text = self.history_path.read_text(encoding="utf-8")
        except OSError:
            return []
        records = []
        for line in text.splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append(record)
        return records

    def keep_history_until(self, step: int | None) -> None:
        """A resumed run keeps the history up to its step; a fresh run (None) starts empty.
        A new file is written (not truncated in place), so incremental readers see a new
        inode and read it again."""
        if step is None:
            self.history_path.unlink(missing_ok=True)
            return
        if not self.history_path.exists():
            return
        kept = [json.dumps(r) + "\n" for r in self.history() if r.get("step", 0) <= step]
        write_bytes_atomic(self.history_path, "".join(kept).encode())

    # Evaluation samples.
    def write_eval_samples(self, step: int, samples: list[dict]) -> None:
        folder = self.path / SAMPLES_DIR
        folder.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(folder / f"{step_name(step)}.json",
                           json.dumps(samples, indent=1, ensure_ascii=False).encode())

    def latest_eval_samples(self) -> tuple[int | None, list[dict]]:
        """The newest readable evaluation: (step, samples), or (None, [])."""
        found = []
        for path in (self.path / SAMPLES_DIR).glob("step-*.json"):
            step = step_of(path.stem)
            if step is not None:
                found.append((step, path))
        for step, path in sorted(found, reverse=True):
            samples = _read_json(path)
            if isinstance(samples, list):
                return step, samples
        return None, []

    # Checkpoints.
    @property
    def checkpoints_dir(self) -> Path:
        return self.path / CHECKPOINTS_DIR

    def checkpoint_folder(self, step: int) -> Path:
        return self.checkpoints_dir / step_name(step)

    def checkpoints(self) -> list[Path]:
        """Complete checkpoints (``step-N`` with their state file), oldest first; folders
        with other names and half-written ones are left out."""
        found = []
        for path in self.checkpoints_dir.glob("step-*"):
            step = step_of(path.name)
            if step is not None and (path / CHECKPOINT_STATE_NAME).is_file():
                found.append((step, path))
        return [path for _, path in sorted(found)]

    def checkpoint_list(self) -> list[dict]:
        """Each checkpoint with its step and time, for listings (unreadable ones left out)."""
        rows = []
        for path in self.checkpoints():
            state = _read_json(path / CHECKPOINT_STATE_NAME)
            if isinstance(state, dict) and isinstance(state.get("step"), int):
                rows.append({"name": path.name, "step": state["step"],
                             "saved_at": path.stat().st_mtime})
        return rows

    def prune_checkpoints(self, keep_last: int) -> None:
        for old in self.checkpoints()[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)

    def task(self) -> str | None:
        """The run's task (``ocr`` or ``chat``), from its configuration; None before it has
        one."""
        from deepsynth.config.training_presets import task_kind

        config = self.config()  # flat, as to_dict writes it
        return task_kind(config.get("trainer_type")) if isinstance(config, dict) else None

    def listing(self) -> dict:
        """What a listing of models shows of this run."""
        return {"name": self.name, "final": self.has_final(), "task": self.task(),
                "metrics": self.summary()}


def list_runs(models: Path) -> list[RunFolder]:
    """Every run folder under ``models`` (the data root's ``models/``), by name."""
    models = Path(models)
    if not models.is_dir():
        return []
    return [RunFolder(p) for p in sorted(models.iterdir()) if p.is_dir()
            and not p.name.startswith(".")]


@dataclass
class _ReadSoFar:
    inode: int
    offset: int = 0
    lines: list[tuple[int, str]] = field(default_factory=list)  # (step, the JSON line)


class HistoryReader:
    """Reads runs' histories incrementally for monitors that poll them: appended lines are
    parsed once (for their step) and kept as text, so serving the history costs a join, not
    a parse and a serialization per request. A rewritten file (a resume) is read again."""

    def __init__(self):
        self._files: dict[Path, _ReadSoFar] = {}
        self._lock = threading.Lock()

    def lines(self, run: RunFolder, since: int = 0) -> list[str]:
        """The history's JSON lines of steps after ``since``."""
        path = run.history_path
        try:
            stat = path.stat()
        except (OSError, ValueError):
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
                    self._add(known, raw)
                known.offset += len(complete)
            return [line for step, line in known.lines if step > since]

    @staticmethod
    def _add(known: _ReadSoFar, raw: bytes) -> None:
        try:
            record = json.loads(raw)
        except ValueError:
            return
        if isinstance(record, dict):
            step = record.get("step", 0)
            known.lines.append((step if isinstance(step, int) else 0, raw.decode()))
