"""The job manager with real threads and real library jobs (generation, training):
state files, transitions, pause/resume/cancel, capacity, restart recovery, secrets."""

from __future__ import annotations

import json
import time

import pyarrow.parquet as pq
import pytest

from conftest import articles, write_jsonl
from deepsynth.jobs.kinds import job_kinds
from deepsynth.jobs.manager import JobConflict, JobManager, RoleError
from deepsynth.jobs.state import InvalidTransition, JobRecord, JobStore

SENTINEL = "hf_SENTINEL_JOB_TOKEN_42"
FIELDS = {"text_field": "article", "summary_field": "highlights", "id_field": "id",
          "page_size": "tiny", "workers": 1}


def wait_for(predicate, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


@pytest.fixture
def root(tmp_path):
    return tmp_path / "data"


def manager(root, **options) -> JobManager:
    return JobManager(JobStore(root / "jobs"), job_kinds(root), **options)


def generate_job(source, **options) -> dict:
    return {"name": options.pop("name", "news"),
            "options": {"source": str(source), **FIELDS, **options}}


def ids(root, name="news") -> list[str]:
    shards = sorted((root / "datasets" / name / "data").glob("train-*.parquet"))
    return [i for s in shards for i in pq.read_table(s, columns=["id"]).column("id").to_pylist()]


def test_generation_job_runs_in_a_thread_and_records_its_state(root, tmp_path):
    source = write_jsonl(tmp_path / "c.jsonl", articles(12))
    jobs = manager(root)
    record = jobs.submit("generate", generate_job(source), name="news",
                         secrets={"hf_token": SENTINEL})
    done = jobs.wait(record.job_id)
    assert done.status == "completed", done.error
    assert done.result["rows"] == {"train": 12}
    assert done.progress["current"] == done.progress["total"] == 12
    assert done.owner["role"] == "all" and done.started_at and done.finished_at
    stored = json.loads((root / "jobs" / record.job_id / "job.json").read_text())
    assert stored["status"] == "completed" and stored["format_version"] == 1
    assert "started generate job" in (root / "jobs" / record.job_id / "job.log").read_text()
    for path in root.rglob("*"):
        if path.is_file():
            assert SENTINEL.encode() not in path.read_bytes(), path
    assert ids(root) == [f"doc-{i}" for i in range(12)]


def test_pause_then_resume_continues_where_the_shards_ended(root, tmp_path):
    source = write_jsonl(tmp_path / "c.jsonl", articles(1500, words=40))
    jobs = manager(root)
    record = jobs.submit("generate", generate_job(source, shard_size=5), name="news")
    manifest = root / "datasets" / "news" / "deepsynth-manifest.json"
    wait_for(lambda: manifest.exists() and json.loads(manifest.read_text())["splits"]
             ["train"]["shards"])
    jobs.pause(record.job_id)
    paused = jobs.wait(record.job_id)
    assert paused.status == "paused"
    written = ids(root)
    assert 0 < len(written) < 1500 and written == [f"doc-{i}" for i in range(len(written))]
    with pytest.raises(InvalidTransition):
        jobs.pause(record.job_id)  # paused jobs cannot be paused again
    jobs.resume(record.job_id)
    finished = wait_for(lambda: jobs.store.load(record.job_id).status == "completed"
                        and jobs.store.load(record.job_id))
    assert finished.result["rows"] == {"train": 1500}
    assert ids(root) == [f"doc-{i}" for i in range(1500)]


def test_cancel_and_delete_rules(root, tmp_path):
    source = write_jsonl(tmp_path / "c.jsonl", articles(1500, words=40))
    jobs = manager(root, generate_capacity=1)
    first = jobs.submit("generate", generate_job(source, name="one", shard_size=5), name="one")
    second = jobs.submit("generate", generate_job(source, name="two"), name="two")
    assert jobs.store.load(second.job_id).status == "queued"  # capacity 1: it waits
    with pytest.raises(InvalidTransition):
        jobs.delete(first.job_id)  # running
    jobs.cancel(second.job_id)
    assert jobs.store.load(second.job_id).status == "cancelled"
    jobs.cancel(first.job_id)
    assert jobs.wait(first.job_id).status == "cancelled"
    with pytest.raises(InvalidTransition):
        jobs.resume(first.job_id)  # cancelled is final
    jobs.delete(first.job_id)
    assert not (root / "jobs" / first.job_id).exists()
    assert (root / "datasets" / "one").exists()  # artifacts are kept unless asked


def test_same_output_twice_and_wrong_role_are_conflicts(root, tmp_path):
    source = write_jsonl(tmp_path / "c.jsonl", articles(1500, words=40))
    jobs = manager(root)
    running = jobs.submit("generate", generate_job(source, shard_size=5), name="news")
    with pytest.raises(JobConflict, match="news"):
        jobs.submit("generate", generate_job(source), name="news")
    jobs.cancel(running.job_id)
    jobs.wait(running.job_id)
    with pytest.raises(RoleError, match="train"):
        manager(root, role="cpu").submit("train", {"name": "m", "options": {}}, name="m")


def test_restart_recovery_and_corrupt_state(root, tmp_path):
    store = JobStore(root / "jobs")
    stale = JobRecord("generate-stale", "generate", status="running", name="x",
                      config=generate_job(write_jsonl(tmp_path / "c.jsonl", articles(3)),
                                          name="x"),
                      heartbeat_at=time.time() - 3600)
    fresh = JobRecord("generate-fresh", "generate", status="running", name="y",
                      heartbeat_at=time.time())
    other_role = JobRecord("train-stale", "train", status="running", name="m",
                           heartbeat_at=time.time() - 3600)
    for record in (stale, fresh, other_role):
        store.save(record)
    (root / "jobs" / "broken").mkdir()
    (root / "jobs" / "broken" / "job.json").write_text("{not json")
    jobs = JobManager(store, job_kinds(root), role="cpu")
    assert jobs.recover() == ["generate-stale"]
    assert store.load("generate-stale").status == "interrupted"
    assert store.load("generate-fresh").status == "running"  # a live service owns it
    assert store.load("train-stale").status == "running"  # not this role's kind
    assert store.load("broken").status == "corrupt"
    assert [r.job_id for r in store.all() if r.status == "corrupt"] == ["broken"]
    jobs.resume("generate-stale")
    assert jobs.wait("generate-stale").status == "completed"


@pytest.mark.parametrize("content", ["null", "[]", "1", '"text"', '{"format_version": 1}'])
def test_a_job_json_that_is_not_a_job_is_corrupt_not_a_crash(root, content):
    store = JobStore(root / "jobs")
    store.save(JobRecord("generate-ok", "generate", status="completed", name="x"))
    bad = JobRecord("generate-bad", "generate", name="y").to_dict()
    bad["created_at"] = None  # parses, but the wrong type
    for job_id, text in (("weird", content), ("generate-bad", json.dumps(bad))):
        (root / "jobs" / job_id).mkdir()
        (root / "jobs" / job_id / "job.json").write_text(text)
    records = {r.job_id: r for r in JobManager(store, job_kinds(root)).store.all()}
    assert records["weird"].status == records["generate-bad"].status == "corrupt"
    assert records["generate-ok"].status == "completed"
    jobs = JobManager(store, job_kinds(root))
    jobs.recover()
    with pytest.raises(InvalidTransition, match="corrupt"):
        jobs.resume("weird")
    jobs.delete("weird")
    assert "weird" not in {r.job_id for r in store.all()}


def dead_pid() -> int:
    import subprocess
    import sys

    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    return finished.pid


def test_jobs_of_a_dead_service_are_recovered_at_start_and_later(root):
    import socket

    store = JobStore(root / "jobs")
    here = socket.gethostname()
    killed = JobRecord("generate-killed", "generate", status="running", name="k",
                       owner={"role": "cpu", "instance": "old", "host": here,
                              "pid": dead_pid()}, heartbeat_at=time.time())
    elsewhere = JobRecord("generate-elsewhere", "generate", status="running", name="e",
                          owner={"role": "cpu", "instance": "x", "host": "another-host",
                                 "pid": dead_pid()}, heartbeat_at=time.time())
    for record in (killed, elsewhere):
        store.save(record)
    jobs = JobManager(store, job_kinds(root), role="cpu", heartbeat_seconds=0.05,
                      stale_seconds=1.0)
    # Same host, process gone: interrupted at once, although its heartbeat is fresh.
    assert jobs.recover() == ["generate-killed"]
    assert store.load("generate-elsewhere").status == "running"  # may be alive elsewhere
    # Once its heartbeat is older than stale_seconds, the heartbeat thread recovers it.
    wait_for(lambda: store.load("generate-elsewhere").status == "interrupted", timeout=10)
    jobs.shutdown(5)


def test_auto_resume_requeues_interrupted_jobs(root, tmp_path):
    store = JobStore(root / "jobs")
    store.save(JobRecord("generate-crashed", "generate", status="pausing", name="x",
                         config=generate_job(write_jsonl(tmp_path / "c.jsonl", articles(3)),
                                             name="x"),
                         heartbeat_at=time.time() - 3600))
    jobs = JobManager(store, job_kinds(root))
    jobs.recover(auto_resume=True)
    assert jobs.wait("generate-crashed").status == "completed"


def test_training_job_pauses_with_a_checkpoint_and_resumes(root, tmp_path):
    source = write_jsonl(tmp_path / "c.jsonl", articles(6, words=20))
    jobs = manager(root)
    made = jobs.submit("generate", generate_job(source, page_size="256x256", font_size=12,
                                                margin=8), name="news")
    assert jobs.wait(made.job_id).status == "completed"
    options = {"dataset": "news", "preset": "quick_test", "max_steps": 30, "save_steps": 100,
               "eval_steps": 100, "peft": "full", "eval_split": "train"}
    record = jobs.submit("train", {"name": "model", "options": options}, name="model")
    wait_for(lambda: (jobs.store.load(record.job_id).progress.get("current") or 0) >= 2)
    jobs.pause(record.job_id)
    paused = jobs.wait(record.job_id)
    assert paused.status == "paused"
    checkpoints = sorted((root / "models" / "model" / "checkpoints").glob("step-*"))
    assert checkpoints, "pausing saves a checkpoint"
    stopped_at = int(checkpoints[-1].name.split("-")[1])
    assert stopped_at < 30
    jobs.resume(record.job_id)
    done = wait_for(lambda: jobs.store.load(record.job_id).status == "completed"
                    and jobs.store.load(record.job_id), timeout=300)
    assert done.result["step"] == 30
    assert "resumed from" in (root / "jobs" / record.job_id / "job.log").read_text()


def test_history_reader_reads_appended_lines_once_and_rereads_a_rewritten_file(tmp_path):
    from deepsynth.atomic_files import write_bytes_atomic
    from deepsynth.training.run_folder import HistoryReader, RunFolder

    run = RunFolder(tmp_path)
    path = run.history_path
    reader = HistoryReader()

    def steps(since=0):
        return [json.loads(line)["step"] for line in reader.lines(run, since)]

    assert reader.lines(run) == []
    path.write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "loss": 1.5}\n')
    assert steps() == [1, 2]
    with open(path, "a") as handle:  # a line still being written is not served yet
        handle.write('{"step": 3, "lo')
    assert steps() == [1, 2]
    with open(path, "a") as handle:
        handle.write('ss": 1.0}\n')
    lines = reader.lines(run)
    assert steps() == [1, 2, 3]
    assert json.loads(lines[-1]) == {"step": 3, "loss": 1.0}
    assert steps(since=2) == [3]
    write_bytes_atomic(path, b'{"step": 1, "loss": 2.0}\n')  # a resume rewrites the file
    assert steps() == [1]

def test_jobs_using_reads_resolved_and_older_training_records(root):
    """A train job's record holds its resolved config (paths under the data root) or, when
    written before, the REST body's names: either way it reads that dataset and model and
    writes its own model."""
    from deepsynth.jobs.train_job import TRAINING_KEY
    from deepsynth.workspace import Workspace

    workspace = Workspace(root)
    jobs = manager(root, accelerator_capacity=0)
    resolved = {"dataset": str(workspace.datasets / "news"),
                "model": str(workspace.models / "base" / "final"),
                "out": str(workspace.models / "new")}
    jobs.submit("train", {"name": "new", TRAINING_KEY: resolved}, name="new")
    jobs.submit("train", {"name": "old", "options": {"dataset": "older", "model": "base"}},
                name="old")
    assert [r.name for r in jobs.jobs_using(dataset="news")] == ["new"]
    assert [r.name for r in jobs.jobs_using(dataset="older")] == ["old"]
    assert {r.name for r in jobs.jobs_using(model="base")} == {"new", "old"}
    assert jobs.jobs_using(model="base", writers_only=True) == []
    assert [r.name for r in jobs.jobs_using(model="new", writers_only=True)] == ["new"]
    hub = {"dataset": "hf:org/data", "out": str(workspace.models / "hub")}
    jobs.submit("train", {"name": "hub", TRAINING_KEY: hub}, name="hub")
    assert [r.name for r in jobs.jobs_using(model="hub")] == ["hub"]
    jobs.shutdown(1)
