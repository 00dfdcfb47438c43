"""Job state: one folder per job under ``<data root>/jobs/`` with an atomically written
``job.json`` (kind, status, config without secrets, progress, times, owner, heartbeat, error,
result), a log file and whatever the job writes. Only valid status transitions are allowed.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from deepsynth.atomic_files import write_json_atomic
from deepsynth.errors import DeepSynthError

FORMAT_VERSION = 1
ACTIVE = ("running", "pausing")
TRANSITIONS: dict[str, set[str]] = {
    "queued": {"running", "paused", "cancelled"},  # paused: held in the queue
    "running": {"pausing", "cancelling", "completed", "failed", "interrupted"},
    "pausing": {"paused", "cancelling", "completed", "failed", "interrupted"},
    "cancelling": {"cancelled", "completed", "failed", "interrupted"},
    "paused": {"queued", "cancelled"},
    "interrupted": {"queued", "cancelled"},
    "failed": {"queued"},
    "completed": set(),
    "cancelled": set(),
    "corrupt": set(),
}
STATUSES = tuple(TRANSITIONS)


class InvalidTransition(DeepSynthError):
    """A request that the job's status does not allow (HTTP 409)."""


@dataclass
class JobRecord:
    job_id: str
    kind: str
    status: str = "queued"
    name: str | None = None  # the output it writes (dataset or model name)
    config: dict = field(default_factory=dict)
    progress: dict = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    heartbeat_at: float | None = None
    owner: dict = field(default_factory=dict)
    error: str | None = None
    result: dict = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict:
        return asdict(self)


_FIELD_TYPES = {"job_id": str, "kind": str, "status": str, "config": dict, "progress": dict,
                "created_at": (int, float), "updated_at": (int, float), "owner": dict,
                "result": dict}


def _parse(data) -> JobRecord:
    """A record from parsed JSON, or ValueError/TypeError when it is not one of ours."""
    if not isinstance(data, dict):
        raise ValueError(f"a JSON {type(data).__name__}, not an object")
    if data.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"format version {data.get('format_version')}")
    for name, expected in _FIELD_TYPES.items():
        if name in data and not isinstance(data[name], expected):
            raise TypeError(f"{name} is a {type(data[name]).__name__}")
    if data.get("status") not in STATUSES:
        raise ValueError(f"unknown status {data.get('status')!r}")
    return JobRecord(**data)


def new_job_id(kind: str) -> str:
    return f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"


class JobStore:
    """Reads and writes job folders; writes are atomic and serialized per job."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._parsed: dict[str, tuple[tuple, JobRecord]] = {}

    def folder(self, job_id: str) -> Path:
        if "/" in job_id or "\x00" in job_id or job_id.startswith(".") or not job_id:
            raise DeepSynthError(f"invalid job id {job_id!r}")
        return self.root / job_id

    def lock(self, job_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(job_id, threading.Lock())

    def save(self, record: JobRecord) -> None:
        record.updated_at = time.time()
        folder = self.folder(record.job_id)
        folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(folder / "job.json", record.to_dict())

    def load(self, job_id: str) -> JobRecord:
        path = self.folder(job_id) / "job.json"
        try:
            stat = path.stat()
        except FileNotFoundError:
            raise KeyError(job_id) from None
        # Listing 1,000 jobs must stay fast: reparse a job.json only when it changed.
        key = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        cached = self._parsed.get(job_id)
        if cached is not None and cached[0] == key:
            return dataclasses.replace(cached[1])  # shallow: fields are replaced, not mutated
        try:
            record = _parse(json.loads(path.read_text()))
        except (OSError, ValueError, TypeError) as exc:
            record = JobRecord(job_id, "unknown", status="corrupt", created_at=stat.st_mtime,
                               updated_at=stat.st_mtime, error=f"unreadable job.json: {exc}")
        self._parsed[job_id] = (key, record)
        return dataclasses.replace(record)

    def update(self, job_id: str, **changes) -> JobRecord:
        """Load, change and save under the job's lock; ``status`` changes are checked."""
        with self.lock(job_id):
            record = self.load(job_id)
            new_status = changes.pop("status", None)
            if new_status and new_status != record.status:
                if new_status not in TRANSITIONS.get(record.status, set()):
                    raise InvalidTransition(f"job {job_id} is {record.status}; it cannot "
                                            f"become {new_status}")
                record.status = new_status
            for key, value in changes.items():
                setattr(record, key, value)
            self.save(record)
            return record

    def all(self) -> list[JobRecord]:
        records = [self.load(p.name) for p in self.root.iterdir()
                   if p.is_dir() and not p.name.startswith(".")]
        return sorted(records, key=lambda r: (r.created_at, r.job_id))

    def delete(self, job_id: str) -> None:
        shutil.rmtree(self.folder(job_id))
        self._parsed.pop(job_id, None)

    def log_path(self, job_id: str) -> Path:
        return self.folder(job_id) / "job.log"
