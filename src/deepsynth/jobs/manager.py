"""The job manager: runs jobs in threads with per-kind capacity, persists their state, pauses,
resumes and cancels them cooperatively, and recovers after a restart. Never imports Flask.

Each kind of job is a :class:`~deepsynth.jobs.kind.JobKind` (see ``deepsynth.jobs.kinds``):
a plain function ``run(config, context) -> result`` reporting through ``context.progress``
and stopping when ``context.should_stop()`` says so, with its role, capacity slot and what it
reads and writes. Secrets (Hub tokens) are handed to the job in memory and never written.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback
import uuid

from deepsynth.errors import DeepSynthError
from deepsynth.jobs.kind import JobContext, JobFunction, JobKind, kinds_by_name
from deepsynth.jobs.state import (
    ACTIVE, TRANSITIONS, InvalidTransition, JobRecord, JobStore, new_job_id,
)
from deepsynth.progress import Progress

__all__ = ["JobConflict", "JobContext", "JobFunction", "JobKind", "JobManager", "RoleError"]
log = logging.getLogger(__name__)
ROLES = ("cpu", "gpu", "all")
RUNNING_LIKE = ACTIVE + ("cancelling",)
PROGRESS_INTERVAL = 0.5
SWEEP_EVERY_BEATS = 5  # look for jobs of dead services every 5 heartbeats


class RoleError(DeepSynthError):
    """This service does not run that kind of job (HTTP 409 naming the service that does)."""


class JobConflict(DeepSynthError):
    """Another job writes the same output, or the job is in the way (HTTP 409)."""


class JobManager:
    def __init__(self, store: JobStore, kinds, role: str = "all",
                 generate_capacity: int = 2, accelerator_capacity: int = 1,
                 heartbeat_seconds: float = 2.0, stale_seconds: float = 30.0):
        """``kinds``: the JobKinds this data root knows (a sequence, or a mapping by name);
        this service runs those of its ``role``."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}; got {role!r}")
        self.store, self.role = store, role
        self.kinds: dict[str, JobKind] = kinds_by_name(kinds)
        self.capacity = {"generate": generate_capacity, "accelerator": accelerator_capacity}
        self.heartbeat_seconds, self.stale_seconds = heartbeat_seconds, stale_seconds
        self.instance_id = uuid.uuid4().hex[:12]
        self.owner = {"role": role, "instance": self.instance_id, "host": socket.gethostname(),
                      "pid": os.getpid()}
        self._lock = threading.RLock()
        self._threads: dict[str, threading.Thread] = {}
        self._stops: dict[str, threading.Event] = {}
        self._secrets: dict[str, dict] = {}
        self._resuming: set[str] = set()
        self._unsettled: dict[str, tuple[str, dict]] = {}  # ends not yet written (disk full)
        self._shutting_down = False
        self._recovered = self._auto_resume = False
        self._beat = threading.Event()
        self._heartbeat = threading.Thread(target=self._beat_loop, daemon=True,
                                           name="deepsynth-heartbeat")
        self._heartbeat.start()

    # Submitting and scheduling.
    def submit(self, kind: str, config: dict, name: str | None = None,
               secrets: dict | None = None) -> JobRecord:
        if not self.runs(kind):
            raise RoleError(f"this {self.role} service does not run {kind} jobs")
        with self._lock:
            self.check_writer(kind, name)
            record = JobRecord(new_job_id(kind), kind, name=name, config=config,
                               owner=self.owner)
            self.store.save(record)
            if secrets:
                self._secrets[record.job_id] = dict(secrets)
            self._schedule()
            return self.store.load(record.job_id)

    def runs(self, kind: str) -> bool:
        """Whether this service runs jobs of ``kind``."""
        return kind in self.kinds and self.kinds[kind].runs_on(self.role)

    def queue_places(self) -> dict[str, dict]:
        """Each queued job this service runs: its place in its slot's line (1: it starts
        next, the scheduler's submission order) and the jobs holding that slot now."""
        records = self.store.all()
        holding: dict[str, list[str]] = {}
        for record in records:
            if record.status in RUNNING_LIKE and record.kind in self.kinds:
                holding.setdefault(self.kinds[record.kind].slot, []).append(record.job_id)
        places: dict[str, dict] = {}
        ahead: dict[str, int] = {}
        for record in records:
            if record.status == "queued" and self.runs(record.kind):
                slot = self.kinds[record.kind].slot
                ahead[slot] = ahead.get(slot, 0) + 1
                places[record.job_id] = {"position": ahead[slot],
                                         "waiting_for": holding.get(slot, [])}
        return places

    def check_writer(self, kind: str, name: str | None, but: str | None = None) -> None:
        """One job writes a given output: a queued, running, paused or interrupted job of
        the same kind keeps its name (it will write there when it goes on)."""
        holding = RUNNING_LIKE + ("queued", "paused", "interrupted")
        for other in self.store.all():
            if name and other.job_id != but and other.name == name and other.kind == kind \
                    and other.status in holding:
                raise JobConflict(f"{kind} job {other.job_id} ({other.status}) already writes "
                                  f"{name!r}; cancel it, or resume it instead")

    def _schedule(self) -> None:
        with self._lock:
            if self._shutting_down:
                return
            records = self.store.all()
            busy = {slot: 0 for slot in self.capacity}
            for record in records:
                if record.job_id in self._threads and record.kind in self.kinds:
                    busy[self.kinds[record.kind].slot] += 1
            for record in records:  # oldest first: submission order
                if record.status != "queued" or not self.runs(record.kind):
                    continue
                if record.job_id in self._threads:  # its last run is still winding down
                    continue
                slot = self.kinds[record.kind].slot
                if busy[slot] >= self.capacity[slot]:
                    continue
                busy[slot] += 1
                self._start(record)

    def _start(self, record: JobRecord) -> None:
        stop = threading.Event()
        self._stops[record.job_id] = stop
        resume = record.job_id in self._resuming
        self._resuming.discard(record.job_id)
        self.store.update(record.job_id, status="running", started_at=time.time(),
                          heartbeat_at=time.time(), error=None,
                          owner=self.owner)
        thread = threading.Thread(target=self._run, args=(record, stop, resume), daemon=True,
                                  name=f"job-{record.job_id}")
        self._threads[record.job_id] = thread
        thread.start()

    def _context(self, record: JobRecord, stop: threading.Event, resume: bool) -> JobContext:
        folder = self.store.folder(record.job_id)

        def write_log(message: str) -> None:
            self._note(record.job_id, message)

        last_write = [0.0]

        def progress(report: Progress) -> None:
            # Generation reports every row; job.json is written (with fsync) twice a second.
            now = time.monotonic()
            if now - last_write[0] < PROGRESS_INTERVAL and report.done != report.total:
                return
            last_write[0] = now
            self.store.update(record.job_id, progress={
                "stage": report.stage, "current": report.done, "total": report.total,
                "rate": report.rate, "eta_s": report.eta_seconds},
                heartbeat_at=time.time())

        return JobContext(record.job_id, folder, progress, stop.is_set, write_log,
                          self._secrets.get(record.job_id, {}), resume=resume)

    def _note(self, job_id: str, message: str) -> None:
        """A line in the job's log."""
        try:
            with open(self.store.log_path(job_id), "a", encoding="utf-8") as handle:
                handle.write(f"{time.strftime('%H:%M:%S')} {message}\n")
        except OSError:  # a full disk must not turn a job's log line into its failure
            log.warning("job %s: could not write its log: %s", job_id, message)

    def _run(self, record: JobRecord, stop: threading.Event, resume: bool) -> None:
        self.store.hold(record.job_id)
        try:
            outcome, changes = self._outcome(record, self._context(record, stop, resume))
            self._settle(record.job_id, outcome, changes)
        finally:
            self.store.release(record.job_id)
            with self._lock:  # a resume meanwhile waits in the queue until this is gone
                self._threads.pop(record.job_id, None)
                self._stops.pop(record.job_id, None)
            self._schedule()

    def _outcome(self, record: JobRecord, context: JobContext) -> tuple[str, dict]:
        """Run the job's function: its outcome, and what the record gets."""
        try:
            context.log(f"started {record.kind} job")
            result = self.kinds[record.kind].run(record.config, context)
            return result.pop("status", "completed"), {"result": result}
        except DeepSynthError as exc:
            context.log(f"failed: {exc}")
            return "failed", {"error": str(exc)}
        except Exception as exc:  # a bug or the machine (disk full): the traceback to the log
            context.log("failed with an unexpected error:\n" + traceback.format_exc())
            return "failed", {"error": f"{type(exc).__name__}: {exc}"}

    def _settle(self, job_id: str, outcome: str, changes: dict) -> None:
        """Record how the job ended. If that cannot be written now (a full disk), the
        heartbeat retries it: a job whose thread ended never stays running."""
        try:
            self._finish(job_id, outcome, **changes)
        except KeyError:
            return  # deleted meanwhile
        except Exception:
            log.exception("could not record the end of job %s; retrying", job_id)
            with self._lock:
                self._unsettled[job_id] = (outcome, changes)

    def _retry_unsettled(self) -> None:
        with self._lock:
            pending = dict(self._unsettled)
            self._unsettled.clear()
        for job_id, (outcome, changes) in pending.items():
            self._settle(job_id, outcome, changes)

    def _finish(self, job_id: str, outcome: str, **changes) -> None:
        record = self.store.load(job_id)
        current = record.status
        if outcome == "stopped":  # the function honoured a stop request
            outcome = {"pausing": "paused", "cancelling": "cancelled"}.get(current,
                                                                          "interrupted")
        if self._shutting_down and outcome not in ("completed", "failed"):
            outcome = "interrupted"
        if outcome == "completed":
            self._secrets.pop(job_id, None)
        self.store.update(job_id, status=outcome, finished_at=time.time(), **changes)
        self._note(job_id, f"{record.kind} job {outcome}")  # the status the monitor shows

    # Requests.
    def pause(self, job_id: str) -> JobRecord:
        return self._request_stop(job_id, "pausing", "paused")

    def cancel(self, job_id: str) -> JobRecord:
        return self._request_stop(job_id, "cancelling", "cancelled")

    def _request_stop(self, job_id: str, while_running: str, when_idle: str) -> JobRecord:
        with self._lock:
            record = self._own(job_id)
            if record.status in ACTIVE and job_id in self._stops:
                self._stops[job_id].set()
                asked = "pause" if while_running == "pausing" else "cancel"
                self._note(job_id, f"{asked} requested: the job stops at its next step")
                return self.store.update(job_id, status=while_running)
            if when_idle not in TRANSITIONS.get(record.status, set()):
                raise InvalidTransition(f"job {job_id} is {record.status}; it cannot be "
                                        f"{when_idle}")
            return self.store.update(job_id, status=when_idle)

    def resume(self, job_id: str) -> JobRecord:
        with self._lock:
            record = self._own(job_id)
            self.check_writer(record.kind, record.name, but=job_id)
            record = self.store.update(job_id, status="queued", error=None)
            self._resuming.add(job_id)
            self._schedule()
            return self.store.load(record.job_id)

    def jobs_using(self, dataset: str | None = None, model: str | None = None,
                   writers_only: bool = False, waiting: bool = False) -> list[JobRecord]:
        """Queued or running jobs that write (or, unless ``writers_only``, read) the named
        dataset or model: what must not be trained on meanwhile. ``waiting``: paused and
        interrupted jobs too, which go on when resumed: what must not be deleted."""
        statuses = ("queued",) + RUNNING_LIKE + (("paused", "interrupted") if waiting else ())
        found = []
        for record in self.store.all():
            if record.status not in statuses or record.kind not in self.kinds:
                continue
            touched = self.kinds[record.kind].touches(record, writers_only)
            wanted = {("dataset", dataset) if dataset else None,
                      ("model", model) if model else None} - {None}
            if wanted & touched:
                found.append(record)
        return found

    def delete(self, job_id: str) -> None:
        with self._lock:
            record = self.store.load(job_id)
            ended = job_id in self._unsettled  # its thread is gone; the end is not written
            if (record.status in RUNNING_LIKE and not ended) or job_id in self._threads:
                raise InvalidTransition(f"job {job_id} is {record.status}; cancel it first")
            self.store.delete(job_id)
            self._secrets.pop(job_id, None)
            self._unsettled.pop(job_id, None)

    def _own(self, job_id: str) -> JobRecord:
        record = self.store.load(job_id)
        if record.status == "corrupt":
            raise InvalidTransition(f"job {job_id} is corrupt ({record.error}); it can only "
                                    f"be deleted")
        if not self.runs(record.kind):
            raise RoleError(f"job {job_id} is a {record.kind} job, which this {self.role} "
                            f"service does not run")
        return record

    # Heartbeat, recovery, shutdown.
    def _beat_loop(self) -> None:
        beats = 0
        while not self._beat.wait(self.heartbeat_seconds):
            beats += 1
            try:
                self._beat_once(sweep=beats % SWEEP_EVERY_BEATS == 0 and self._recovered)
            except Exception:  # the heartbeat outlives any one bad beat
                log.exception("heartbeat failed; continuing")

    def _beat_once(self, sweep: bool) -> None:
        for job_id in list(self._threads):
            try:
                self.store.update(job_id, heartbeat_at=time.time())
            except (KeyError, OSError, DeepSynthError):
                pass
        self._retry_unsettled()
        if sweep:
            self._sweep(self._auto_resume)

    def _owner_gone(self, record: JobRecord) -> bool:
        """Whether the service that ran the job is certainly dead: it ran on this host (or
        container) in a process that no longer exists, or in an earlier life of this pid
        (a restarted container's pid 1)."""
        owner = record.owner or {}
        if owner.get("host") != self.owner["host"] or not isinstance(owner.get("pid"), int):
            return False
        if owner["pid"] == self.owner["pid"]:
            return owner.get("instance") != self.instance_id
        try:
            os.kill(owner["pid"], 0)
        except ProcessLookupError:
            return True
        except OSError:  # exists, owned by another user
            return False
        return False

    def _stale(self, record: JobRecord, now: float) -> bool:
        return (self._owner_gone(record)
                or now - (record.heartbeat_at or 0) >= self.stale_seconds)

    def recover(self, auto_resume: bool = False) -> list[str]:
        """After a restart: running jobs of our kinds whose service is gone (dead on this
        host, or a heartbeat older than ``stale_seconds``) become interrupted; with
        ``auto_resume`` every interrupted job of our kinds is queued again; queued jobs are
        scheduled. The heartbeat thread repeats the check, so a job whose heartbeat was
        still fresh at start is recovered once it goes stale. Returns the jobs marked
        interrupted now."""
        self._recovered, self._auto_resume = True, auto_resume
        return self._sweep(auto_resume, resume_interrupted=auto_resume)

    def _sweep(self, auto_resume: bool, resume_interrupted: bool = False) -> list[str]:
        interrupted = []
        now = time.time()
        with self._lock:
            for record in self.store.all():
                if not self.runs(record.kind) or record.job_id in self._threads:
                    continue
                if record.status in RUNNING_LIKE:
                    if not self._stale(record, now):
                        continue  # another live service owns it
                    self.store.update(record.job_id, status="interrupted",
                                      error="the service stopped while this job ran")
                    interrupted.append(record.job_id)
                elif record.status != "interrupted" or not resume_interrupted:
                    continue
                if auto_resume:  # also jobs a clean shutdown (SIGTERM) marked interrupted
                    self.store.update(record.job_id, status="queued")
                    self._resuming.add(record.job_id)
            self._schedule()
        return interrupted

    def shutdown(self, grace_seconds: float = 60.0) -> None:
        """Stop running jobs cleanly (shard or checkpoint written), mark them interrupted."""
        with self._lock:
            self._shutting_down = True
            threads = dict(self._threads)
            for job_id in threads:
                self._stops[job_id].set()
        deadline = time.monotonic() + grace_seconds
        for thread in threads.values():
            thread.join(max(deadline - time.monotonic(), 0))
        self._beat.set()

    def wait(self, job_id: str, timeout: float = 120.0) -> JobRecord:
        """Block until the job's thread ends (for tests and the CLI)."""
        thread = self._threads.get(job_id)
        if thread is not None:
            thread.join(timeout)
        return self.store.load(job_id)
