"""What a kind of job is: its name, the service role that runs it, the capacity slot it takes,
its run function, and which datasets and models a job of it reads and writes.

The manager schedules, checks roles, recovers and answers ``jobs_using`` from these
declarations alone; it never decodes a kind's options itself. The kinds themselves are in
``deepsynth.jobs.kinds``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from deepsynth.jobs.state import JobRecord
from deepsynth.progress import Progress

ROLES = ("cpu", "gpu")
SLOTS = ("generate", "accelerator")
Touched = set[tuple[str, str]]  # {("dataset" | "model", name)}


@dataclass
class JobContext:
    job_id: str
    folder: Path
    progress: Callable[[Progress], None]
    should_stop: Callable[[], bool]
    log: Callable[[str], None]
    secrets: dict = field(default_factory=dict)
    resume: bool = False


JobFunction = Callable[[dict, JobContext], dict]


def _nothing(record: JobRecord) -> Touched:
    return set()


@dataclass(frozen=True)
class JobKind:
    """One kind of job. ``reads`` and ``writes`` name what a job of this kind uses, from its
    record: what must not be deleted, or trained on while it is being written."""

    name: str
    role: str  # the service role that runs it: cpu or gpu ("all" runs every kind)
    slot: str  # the capacity it takes: generate or accelerator
    run: JobFunction
    reads: Callable[[JobRecord], Touched] = _nothing
    writes: Callable[[JobRecord], Touched] = _nothing

    def __post_init__(self):
        if self.role not in ROLES or self.slot not in SLOTS:
            raise ValueError(f"job kind {self.name}: role {self.role!r}, slot {self.slot!r}")

    def runs_on(self, role: str) -> bool:
        return role == "all" or role == self.role

    def touches(self, record: JobRecord, writers_only: bool = False) -> Touched:
        found = self.writes(record)
        return found if writers_only else found | self.reads(record)


def kinds_by_name(kinds) -> dict[str, JobKind]:
    """A mapping name -> kind from kinds (or from such a mapping already)."""
    if isinstance(kinds, dict):
        return dict(kinds)
    return {kind.name: kind for kind in kinds}
