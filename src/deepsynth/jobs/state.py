"""Job state: one folder per job under ``<data root>/jobs/`` with an atomically written
``job.json`` (kind, status, config without secrets, progress, times, owner, heartbeat, error,
result), a log file and whatever the job writes. Only valid status transitions are allowed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from deepsynth.atomic_files import write_json_atomic
from deepsynth.errors import DeepSynthError

FORMAT_VERSION = 1
JOB_FILE = "job.json"
_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")  # new_job_id's, and older ones
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
        self._good: dict[str, JobRecord] = {}  # the last good record of each job seen here
        self._held: set[str] = set()  # jobs this process runs: their record is in memory

    def folder(self, job_id: str) -> Path:
        if not isinstance(job_id, str) or not _JOB_ID.match(job_id):
            raise DeepSynthError(f"invalid job id {job_id[:60]!r}")
        return self.root / job_id

    def lock(self, job_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(job_id, threading.Lock())

    def save(self, record: JobRecord) -> None:
        """Write the record; a new job's folder appears with its job.json in it (made in a
        hidden temp folder and renamed), so no reader ever sees a folder without one."""
        record.updated_at = time.time()
        folder = self.folder(record.job_id)
        if folder.is_dir():
            write_json_atomic(folder / JOB_FILE, record.to_dict())
        else:
            building = Path(tempfile.mkdtemp(dir=self.root, prefix=f".{record.job_id}."))
            try:
                os.chmod(building, 0o755)
                write_json_atomic(building / JOB_FILE, record.to_dict())
                building.rename(folder)
            except BaseException:
                shutil.rmtree(building, ignore_errors=True)
                raise
        self._good[record.job_id] = dataclasses.replace(record)

    def load(self, job_id: str) -> JobRecord:
        """The record. A job.json that cannot be read is, for a job this process runs, the
        last good record (the next update writes it back: a running job's state is never
        lost to a damaged file), else a ``corrupt`` placeholder naming the reason. Unknown
        ids are KeyError."""
        folder = self.folder(job_id)
        path = folder / JOB_FILE
        try:
            stat = path.stat()
        except FileNotFoundError:
            if not folder.is_dir():
                raise KeyError(job_id) from None
            return self._damaged(job_id, folder.stat().st_mtime, f"no {JOB_FILE} in its folder")
        # Listing 1,000 jobs must stay fast: reparse a job.json only when it changed.
        key = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        cached = self._parsed.get(job_id)
        if cached is not None and cached[0] == key:
            return dataclasses.replace(cached[1])  # shallow: fields are replaced, not mutated
        try:
            record = _parse(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError, RecursionError) as exc:
            return self._damaged(job_id, stat.st_mtime, f"unreadable {JOB_FILE}: {exc}")
        self._parsed[job_id] = (key, record)
        self._good[job_id] = dataclasses.replace(record)
        return dataclasses.replace(record)

    def hold(self, job_id: str) -> None:
        """This process runs the job: a damaged job.json of it is rebuilt from memory."""
        self._held.add(job_id)

    def release(self, job_id: str) -> None:
        self._held.discard(job_id)

    def _damaged(self, job_id: str, mtime: float, reason: str) -> JobRecord:
        good = self._good.get(job_id)
        if good is not None and job_id in self._held:
            return dataclasses.replace(good)
        return JobRecord(job_id, "unknown", status="corrupt", created_at=mtime,
                         updated_at=mtime, error=reason)

    def update(self, job_id: str, **changes) -> JobRecord:
        """Load, change and save under the job's lock; ``status`` changes are checked. A
        corrupt record is never written over (it can only be deleted)."""
        with self.lock(job_id):
            record = self.load(job_id)
            if record.status == "corrupt":
                raise InvalidTransition(f"job {job_id} is corrupt ({record.error}); it can "
                                        f"only be deleted")
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
        """Every job, oldest first; a folder that vanishes meanwhile (a delete) is left out,
        one that cannot be read is listed ``corrupt`` with the reason."""
        records = []
        for path in self.root.iterdir():
            if path.name.startswith(".") or not path.is_dir():
                continue
            try:
                records.append(self.load(path.name))
            except (KeyError, FileNotFoundError):
                continue
        return sorted(records, key=lambda r: (r.created_at, r.job_id))

    def delete(self, job_id: str) -> None:
        """Remove the job's folder: renamed away first, so listings never see half of it."""
        folder = self.folder(job_id)
        doomed = self.root / f".deleting-{job_id}-{uuid.uuid4().hex[:6]}"
        folder.rename(doomed)
        shutil.rmtree(doomed, ignore_errors=True)
        self._parsed.pop(job_id, None)
        self._good.pop(job_id, None)

    def log_path(self, job_id: str) -> Path:
        return self.folder(job_id) / "job.log"
