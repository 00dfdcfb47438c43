"""Job lifecycles through the REST API: a real waitress server in a thread, the real job
manager and real jobs (the tiny model, small pages).

Covers: two generation jobs and one training job running at once; capacity and submission
order of queued jobs; pause, resume and cancel of every kind of job (generate, train,
evaluate, push_dataset, push_model); invalid transitions as 409s with a reason; deletion
refused while a job runs and what a deletion removes. State is always awaited by polling
with a deadline, never by sleeping a fixed time.
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import articles, write_jsonl
from support.server import Client, HubDouble, running, wait_job

from deepsynth.config.server import ServerConfig

GENERATE = {"text_field": "article", "summary_field": "highlights", "id_field": "id",
            "page_size": "tiny", "workers": 1, "shard_size": 5}
# Small training runs: 256x256 pages, a two-sample probe with short generations.
TRAIN = {"dataset": "ds", "model": "tiny-deepseek-ocr-2", "preset": "quick_test",
         "eval_samples": 2, "max_new_tokens": 8}


def generate_body(name: str, source: str) -> dict:
    return {"source": source, "name": name, **GENERATE}


def wait_until(probe, what: str, timeout: float = 60.0, interval: float = 0.02):
    """Poll ``probe`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def job(client: Client, job_id: str) -> dict:
    status, view = client.call("GET", f"/api/jobs/{job_id}")
    assert status == 200, view
    return view


def act(client: Client, job_id: str, action: str) -> tuple[int, dict]:
    return client.call("POST", f"/api/jobs/{job_id}/{action}")


def refused(client: Client, job_id: str, action: str, status_word: str) -> None:
    """The request is a 409 whose reason names the job's current status."""
    status, error = act(client, job_id, action)
    assert status == 409, (action, error)
    assert status_word in error["error"] and job_id in error["error"], error


def trained_steps(client: Client, job_id: str) -> list[int]:
    """The optimizer steps in the training job's metrics history (one line per step)."""
    status, metrics = client.call("GET", f"/api/metrics/{job_id}")
    assert status == 200, metrics
    return [row["step"] for row in metrics["history"] if "loss" in row]


def parquet_ids(folder: Path) -> list[str]:
    return [i for shard in sorted(folder.glob("data/*.parquet"))
            for i in pq.read_table(shard, columns=["id"]).column("id").to_pylist()]


@pytest.fixture(scope="module")
def seed(tmp_path_factory) -> Path:
    """A data root holding a small generated dataset ``ds`` and a trained model ``m``,
    made once through the API; tests copy it (``fresh_root``)."""
    root = tmp_path_factory.mktemp("lifecycle-seed") / "data"
    with running(ServerConfig(data_root=str(root), threads=8)) as (_, base):
        client = Client(base)
        status, made = client.call("POST", "/api/benchmark/create", {
            "preset": "scitldr", "max_samples": 4, "name": "ds", "page_size": "256x256",
            "font_size": 12, "margin": 8, "workers": 1})
        assert status == 202, made
        assert wait_job(client, made["job_id"], 120)["status"] == "completed"
        status, started = client.call("POST", "/api/model/train", {
            **TRAIN, "max_steps": 2, "eval_steps": 2, "save_steps": 2, "name": "m"})
        assert status == 202, started
        done = wait_job(client, started["job_id"], 180)
        assert done["status"] == "completed", done["error"]
    assert (root / "models" / "m" / "final").is_dir()
    return root


def fresh_root(seed: Path, tmp_path: Path) -> Path:
    """A new data root with the seed's datasets, models and model cache (no jobs)."""
    root = tmp_path / "data"
    for folder in ("datasets", "models", "cache"):
        shutil.copytree(seed / folder, root / folder)
    return root


def test_two_generation_jobs_and_one_training_job_at_once_then_queued_jobs_in_order(
        seed, tmp_path):
    root = fresh_root(seed, tmp_path)
    write_jsonl(root / "uploads" / "big.jsonl", articles(600, words=40))
    write_jsonl(root / "uploads" / "small.jsonl", articles(20, prefix="small"))
    with running(ServerConfig(data_root=str(root), threads=8)) as (app, base):
        assert app.config["JOBS"].capacity == {"generate": 2, "accelerator": 1}  # defaults
        client = Client(base)
        ids = {}
        for name in ("gen-a", "gen-b"):
            status, made = client.call("POST", "/api/dataset/generate",
                                       generate_body(name, "uploads/big.jsonl"))
            assert status == 202 and made["status"] == "running", made
            ids[name] = made["job_id"]
        status, made = client.call("POST", "/api/model/train", {
            **TRAIN, "max_steps": 3, "eval_steps": 3, "save_steps": 3, "name": "trained"})
        assert status == 202 and made["status"] == "running", made  # its own slot
        ids["train"] = made["job_id"]
        # Both generation slots are taken: later generation jobs wait, in order.
        for name in ("gen-c", "gen-d"):
            status, made = client.call("POST", "/api/dataset/generate",
                                       generate_body(name, "uploads/small.jsonl"))
            assert status == 202 and made["status"] == "queued", made
            ids[name] = made["job_id"]

        def all_three_running():
            statuses = {view["job_id"]: view["status"]
                        for view in client.call("GET", "/api/jobs?limit=1000")[1]["jobs"]}
            return all(statuses[ids[n]] == "running" for n in ("gen-a", "gen-b", "train"))

        wait_until(all_three_running, "gen-a, gen-b and train running at once", 30)
        views = {name: wait_job(client, job_id, 120) for name, job_id in ids.items()}

    for name, view in views.items():
        assert view["status"] == "completed", (name, view["error"])
    # Outputs: every row of each corpus, a final model.
    for name, rows in (("gen-a", 600), ("gen-b", 600), ("gen-c", 20), ("gen-d", 20)):
        assert views[name]["result"]["rows"] == {"train": rows}, name
        assert len(set(parquet_ids(root / "datasets" / name))) == rows, name
    assert views["train"]["result"]["step"] == 3
    assert (root / "models" / "trained" / "final").is_dir()

    # The three really overlapped, and at no instant did more than two generation jobs run.
    started = {n: v["started_at"] for n, v in views.items()}
    finished = {n: v["finished_at"] for n, v in views.items()}
    trio = ("gen-a", "gen-b", "train")
    assert max(started[n] for n in trio) < min(finished[n] for n in trio)
    generations = ("gen-a", "gen-b", "gen-c", "gen-d")
    for name in generations:
        at = started[name]
        assert sum(started[o] <= at < finished[o] for o in generations) <= 2, name
    # Queued jobs start in submission order, each once a slot is free.
    assert started["gen-a"] <= started["gen-b"] <= started["gen-c"] <= started["gen-d"]
    assert started["gen-c"] >= min(finished["gen-a"], finished["gen-b"])
    assert started["gen-d"] >= sorted(finished[n] for n in ("gen-a", "gen-b", "gen-c"))[1]


def test_generation_pause_resume_cancel_and_delete(seed, tmp_path):
    root = fresh_root(seed, tmp_path)
    write_jsonl(root / "uploads" / "x.jsonl", articles(1500, words=40))
    data = root / "datasets" / "paused-ds"
    with running(ServerConfig(data_root=str(root), threads=8)) as (_, base):
        client = Client(base)
        status, made = client.call("POST", "/api/dataset/generate",
                                   generate_body("paused-ds", "uploads/x.jsonl"))
        assert status == 202, made
        job_id = made["job_id"]
        wait_until(lambda: list(data.glob("data/*.parquet")), "a first shard")
        # While it runs: not resumable, not deletable, its dataset not deletable.
        refused(client, job_id, "resume", "running")
        status, error = client.call("DELETE", f"/api/jobs/{job_id}")
        assert status == 409 and "cancel it first" in error["error"], error
        status, error = client.call("DELETE", "/api/datasets/paused-ds")
        assert status == 409 and job_id in error["error"], error

        status, view = act(client, job_id, "pause")
        assert status == 200 and view["status"] in ("pausing", "paused"), view
        paused = wait_job(client, job_id, 120)
        assert paused["status"] == "paused", paused["error"]
        written = paused["result"]["rows"]["train"]
        assert 0 < written < 1500  # stopped early, with its rows in shards
        assert len(parquet_ids(data)) == written
        status, listed = client.call("GET", "/api/datasets/paused-ds")
        assert status == 200 and listed["splits"] == {"train": written}
        refused(client, job_id, "pause", "paused")

        status, view = act(client, job_id, "resume")
        assert status == 200 and view["status"] in ("queued", "running"), view
        done = wait_job(client, job_id, 120)
        assert done["status"] == "completed", done["error"]
        assert done["result"]["rows"] == {"train": 1500}
        assert done["result"]["counts"]["written"] == 1500
        assert sorted(parquet_ids(data)) == sorted(f"doc-{i}" for i in range(1500))
        for action in ("pause", "resume", "cancel"):
            refused(client, job_id, action, "completed")

        # Deleting the finished job removes its folder, not its dataset.
        assert (root / "jobs" / job_id).is_dir()
        status, deleted = client.call("DELETE", f"/api/jobs/{job_id}")
        assert status == 200 and deleted == {"deleted": job_id}
        assert not (root / "jobs" / job_id).exists()
        assert client.call("GET", f"/api/jobs/{job_id}")[0] == 404
        status, kept = client.call("GET", "/api/datasets/paused-ds")
        assert status == 200 and kept["splits"] == {"train": 1500} and kept["status"] == "ready"

        # Cancel a paused job, and a running one.
        for name, pause_first in (("pause-then-cancel", True), ("cancel-running", False)):
            status, made = client.call("POST", "/api/dataset/generate",
                                       generate_body(name, "uploads/x.jsonl"))
            assert status == 202, made
            other = made["job_id"]
            wait_until(lambda n=name: list((root / "datasets" / n).glob("data/*.parquet")),
                       f"a first shard of {name}")
            if pause_first:
                assert act(client, other, "pause")[0] == 200
                assert wait_job(client, other, 120)["status"] == "paused"
            status, view = act(client, other, "cancel")
            assert status == 200 and view["status"] in ("cancelling", "cancelled"), view
            cancelled = wait_job(client, other, 120)
            assert cancelled["status"] == "cancelled", cancelled["error"]
            assert cancelled["result"]["rows"]["train"] < 1500
            for action in ("pause", "resume", "cancel"):
                refused(client, other, action, "cancelled")
            assert client.call("DELETE", f"/api/jobs/{other}")[0] == 200


def test_training_pause_resume_cancel_and_delete(seed, tmp_path):
    root = fresh_root(seed, tmp_path)
    with running(ServerConfig(data_root=str(root), threads=8)) as (_, base):
        client = Client(base)
        status, made = client.call("POST", "/api/model/train", {
            **TRAIN, "max_steps": 6, "eval_steps": 6, "save_steps": 100, "name": "paused-m"})
        assert status == 202, made
        job_id = made["job_id"]
        wait_until(lambda: trained_steps(client, job_id), "a first optimizer step", 120)
        refused(client, job_id, "resume", "running")
        status, error = client.call("DELETE", f"/api/jobs/{job_id}")
        assert status == 409 and "cancel it first" in error["error"], error
        for path in ("/api/models/paused-m", "/api/datasets/ds"):  # written, read
            status, error = client.call("DELETE", path)
            assert status == 409 and job_id in error["error"], (path, error)

        status, view = act(client, job_id, "pause")
        assert status == 200 and view["status"] in ("pausing", "paused"), view
        paused = wait_job(client, job_id, 120)
        assert paused["status"] == "paused", paused["error"]
        stopped_at = paused["result"]["step"]
        assert 1 <= stopped_at < 6 and paused["result"]["training_status"] == "stopped"
        status, saved = client.call("GET", f"/api/training/checkpoints?job_id={job_id}")
        assert status == 200 and [c["step"] for c in saved["checkpoints"]] == [stopped_at]
        assert not (root / "models" / "paused-m" / "final").exists()
        refused(client, job_id, "pause", "paused")

        status, view = act(client, job_id, "resume")
        assert status == 200 and view["status"] in ("queued", "running"), view
        done = wait_job(client, job_id, 120)
        assert done["status"] == "completed", done["error"]
        assert done["result"]["step"] == 6 and done["result"]["training_status"] == "completed"
        assert (root / "models" / "paused-m" / "final").is_dir()
        assert trained_steps(client, job_id) == [1, 2, 3, 4, 5, 6]
        status, logs = client.call("GET", f"/api/jobs/{job_id}/logs")
        assert sum("started train job" in line for line in logs["lines"]) == 2
        # The log tells the run's story (issue 18 item 5), in the statuses the monitor shows.
        story = "\n".join(logs["lines"])
        for line in ("pause requested", "train job paused",
                     f"checkpoint saved: step-{stopped_at:06d}", "step 6/6 · loss", "evaluation at step 6: eval_loss",
                     "training completed at step 6 of 6", "train job completed"):
            assert line in story, (line, story)
        for action in ("pause", "resume", "cancel"):
            refused(client, job_id, action, "completed")
        assert client.call("DELETE", f"/api/jobs/{job_id}")[0] == 200
        assert (root / "models" / "paused-m" / "final").is_dir()  # the model stays

        status, made = client.call("POST", "/api/model/train", {
            **TRAIN, "max_steps": 200, "save_steps": 100, "name": "cancelled-m"})
        assert status == 202, made
        other = made["job_id"]
        wait_until(lambda: trained_steps(client, other), "a first optimizer step", 120)
        status, view = act(client, other, "cancel")
        assert status == 200 and view["status"] in ("cancelling", "cancelled"), view
        cancelled = wait_job(client, other, 120)
        assert cancelled["status"] == "cancelled", cancelled["error"]
        assert cancelled["result"]["step"] < 200
        assert not (root / "models" / "cancelled-m" / "final").exists()
        refused(client, other, "resume", "cancelled")
        assert client.call("DELETE", f"/api/jobs/{other}")[0] == 200
        assert (root / "models" / "cancelled-m").is_dir()


def test_a_queued_job_holds_only_the_dataset_and_model_it_uses(seed, tmp_path):
    root = fresh_root(seed, tmp_path)
    write_jsonl(root / "uploads" / "x.jsonl", articles(5))
    config = ServerConfig(data_root=str(root), threads=8, generate_capacity=0,
                          accelerator_capacity=0)
    with running(config) as (_, base):
        client = Client(base)
        status, made = client.call("POST", "/api/dataset/generate",
                                   generate_body("unrelated", "uploads/x.jsonl"))
        assert status == 202 and made["status"] == "queued", made
        for path in ("/api/datasets/ds", "/api/models/m"):
            status, answer = client.call("DELETE", path)
            assert status == 200, (path, answer)


def hub_manager(root: Path, hub, generate_capacity: int, accelerator_capacity: int):
    from deepsynth.jobs.kinds import job_kinds
    from deepsynth.jobs.manager import JobManager
    from deepsynth.jobs.state import JobStore

    return JobManager(JobStore(root / "jobs"), job_kinds(root, hub=hub),
                      generate_capacity=generate_capacity,
                      accelerator_capacity=accelerator_capacity)


SHORT_JOBS = {
    "evaluate": ("/api/evaluate", {"model": "m", "dataset": "ds", "max_samples": 1}),
    "push_dataset": ("/api/datasets/ds/push", {"repo_id": "me/ds"}),
    "push_model": ("/api/models/m/push", {"repo_id": "me/m"}),
}


def test_evaluate_and_push_jobs_held_in_the_queue(seed, tmp_path):
    """Capacity 0 keeps the short jobs queued. Push jobs get HubDouble, a test double of the
    Hub client (the Hub is unreachable here); it is never called, as nothing runs."""
    root = fresh_root(seed, tmp_path)
    before = len(HubDouble.instances)
    manager = hub_manager(root, HubDouble, generate_capacity=0, accelerator_capacity=0)
    config = ServerConfig(data_root=str(root), threads=8, generate_capacity=0,
                          accelerator_capacity=0)
    with running(config, manager=manager) as (_, base):
        client = Client(base)
        ids = {}
        for kind, (path, body) in SHORT_JOBS.items():
            status, made = client.call("POST", path, body)
            assert status == 202 and made["kind"] == kind, made
            assert made["status"] == "queued", made
            ids[kind] = made["job_id"]
        status, health = client.call("GET", "/api/health")
        assert health["queues"] == {"queued": 3, "running": 0}
        # Queued jobs hold their inputs.
        for path in ("/api/models/m", "/api/datasets/ds"):
            status, error = client.call("DELETE", path)
            assert status == 409 and "is used by job" in error["error"], (path, error)
        # Submitting the same output again is a conflict.
        status, error = client.call("POST", *SHORT_JOBS["push_model"])
        assert status == 409 and "already" in error["error"], error

        for kind, job_id in ids.items():
            # Pausing a queued job holds it in the queue; resuming queues it again.
            status, view = act(client, job_id, "pause")
            assert status == 200 and view["status"] == "paused", (kind, view)
            refused(client, job_id, "pause", "paused")
            # A paused job goes on when resumed: it still holds what it uses.
            held = "/api/datasets/ds" if kind == "push_dataset" else "/api/models/m"
            status, error = client.call("DELETE", held)
            assert status == 409 and "is used by job" in error["error"], (kind, error)
            status, view = act(client, job_id, "resume")
            assert status == 200 and view["status"] == "queued", (kind, view)
            status, view = act(client, job_id, "cancel")
            assert status == 200 and view["status"] == "cancelled", (kind, view)
            assert job(client, job_id)["started_at"] is None  # it never ran
            for action in ("pause", "resume", "cancel"):
                refused(client, job_id, action, "cancelled")
            status, deleted = client.call("DELETE", f"/api/jobs/{job_id}")
            assert status == 200 and deleted == {"deleted": job_id}
            assert not (root / "jobs" / job_id).exists()
        # Cancelled jobs no longer hold their inputs; deletion removes jobs, not data.
        assert (root / "datasets" / "ds" / "deepsynth-manifest.json").exists()
        assert client.call("DELETE", "/api/models/m")[0] == 200
    assert len(HubDouble.instances) == before


class HubRefused(Exception):
    """A permanent Hub error (not retried)."""


class ControlledHub(HubDouble):
    """TEST DOUBLE of the Hub client (the Hub is unreachable here) that can refuse the next
    repository creation, or hold uploads until the test releases them."""

    refuse_next = False
    entered = threading.Event()
    release = threading.Event()

    def create_repo(self, repo_id, *, private):
        if ControlledHub.refuse_next:
            ControlledHub.refuse_next = False
            raise HubRefused("403 Forbidden (test double)")
        super().create_repo(repo_id, private=private)

    def upload_file(self, local_path, path_in_repo, repo_id):
        ControlledHub.entered.set()
        assert ControlledHub.release.wait(60), "the test never released the upload"
        super().upload_file(local_path, path_in_repo, repo_id)


@pytest.fixture
def controlled_hub():
    ControlledHub.refuse_next = False
    ControlledHub.entered.clear()
    ControlledHub.release.set()
    yield ControlledHub
    ControlledHub.release.set()


def test_evaluate_and_push_jobs_resume_after_failure(seed, tmp_path, controlled_hub):
    """Push jobs use ControlledHub, a test double of the Hub client (the Hub is unreachable
    here). Each kind fails once, is resumed, runs again and completes."""
    root = fresh_root(seed, tmp_path)
    manager = hub_manager(root, controlled_hub, generate_capacity=2, accelerator_capacity=1)
    final = root / "models" / "m" / "final"
    with running(ServerConfig(data_root=str(root), threads=8), manager=manager) as (_, base):
        client = Client(base)
        for kind, (path, body) in SHORT_JOBS.items():
            if kind == "evaluate":  # the model's weights are missing while it runs
                final.rename(final.with_name("final-away"))
            else:
                controlled_hub.refuse_next = True
            status, made = client.call("POST", path, body)
            assert status == 202, (kind, made)
            job_id = made["job_id"]
            failed = wait_job(client, job_id, 120)
            assert failed["status"] == "failed" and failed["error"], (kind, failed)
            refused(client, job_id, "pause", "failed")
            if kind == "evaluate":
                final.with_name("final-away").rename(final)
            status, view = act(client, job_id, "resume")
            assert status == 200 and view["status"] in ("queued", "running"), (kind, view)
            done = wait_job(client, job_id, 120)
            assert done["status"] == "completed", (kind, done["error"])
            assert done["error"] is None
            if kind == "evaluate":
                assert done["result"]["samples"] == 1
            else:
                hub = controlled_hub.instances[-1]
                assert hub.created == [(body["repo_id"], True)] and hub.uploaded, kind
            for action in ("pause", "resume", "cancel"):
                refused(client, job_id, action, "completed")


def test_stop_requests_to_running_push_jobs_are_accepted_but_they_complete(
        seed, tmp_path, controlled_hub):
    """Only generation and training honour stop requests (docs/jobs.md). A push job asked
    to pause or cancel while it uploads reports pausing or cancelling and completes.
    Uses ControlledHub, a test double of the Hub client (the Hub is unreachable here)."""
    root = fresh_root(seed, tmp_path)
    manager = hub_manager(root, controlled_hub, generate_capacity=2, accelerator_capacity=1)
    with running(ServerConfig(data_root=str(root), threads=8), manager=manager) as (_, base):
        client = Client(base)
        for kind, action, stopping in (("push_dataset", "pause", "pausing"),
                                       ("push_model", "cancel", "cancelling")):
            controlled_hub.entered.clear()
            controlled_hub.release.clear()
            path, body = SHORT_JOBS[kind]
            status, made = client.call("POST", path, body)
            assert status == 202, made
            job_id = made["job_id"]
            assert controlled_hub.entered.wait(60), f"{kind} never uploaded"
            status, view = act(client, job_id, action)
            assert status == 200 and view["status"] == stopping, view
            refused(client, job_id, "resume", stopping)
            status, error = client.call("DELETE", f"/api/jobs/{job_id}")
            assert status == 409 and "cancel it first" in error["error"], error
            controlled_hub.release.set()
            done = wait_job(client, job_id, 120)
            assert done["status"] == "completed", (kind, done["error"])
            assert client.call("DELETE", f"/api/jobs/{job_id}")[0] == 200
