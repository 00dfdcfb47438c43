"""`deepsynth serve` as a real process: SIGTERM pauses running jobs cleanly and marks them
interrupted; a restart with --auto-resume finishes them. A server killed with SIGKILL finds
its jobs interrupted at restart, and resuming them neither repeats nor skips work (training
steps, dataset rows). An unreadable job.json is listed as corrupt and never takes the server
down."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from conftest import articles, write_jsonl

UNFINISHED = ("queued", "running", "pausing", "cancelling")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(root, port, *extra) -> subprocess.Popen:
    # One torch thread: fast enough for the tiny model, and no spinning threads slowing each
    # other down when the machine is busy running other tests.
    env = {**os.environ, "DEEPSYNTH_API_TOKEN": "", "DEEPSYNTH_ALLOW_UNAUTHENTICATED": "",
           "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "deepsynth", "serve", "--port",
                                str(port), "--data-root", str(root), *extra],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2):
                return process
        except OSError:
            assert process.poll() is None, process.stderr.read().decode()
            time.sleep(0.1)
    stop(process)
    raise AssertionError("server did not start")


def stop(process: subprocess.Popen) -> None:
    """SIGTERM and wait (a no-op for a process already gone, e.g. SIGKILLed)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    process.stderr.close()


@pytest.fixture
def serve():
    """``serve(root, *extra) -> (process, port)``; every server started is stopped at the
    end of the test, whatever happened."""
    started: list[subprocess.Popen] = []

    def launch(root, *extra) -> tuple[subprocess.Popen, int]:
        port = free_port()
        process = start(root, port, *extra)
        started.append(process)
        return process, port

    yield launch
    for process in started:
        stop(process)


def post(port, path, body) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method="POST",
                                     data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def get(port, path) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as response:
        assert response.status == 200
        return json.loads(response.read())


def error_status(method: str, port, path) -> tuple[int, dict]:
    """A request expected to fail: its HTTP status and JSON body."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                     data=b"{}" if method == "POST" else None,
                                     headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as failure:
        urllib.request.urlopen(request, timeout=30)
    return failure.value.code, json.loads(failure.value.read())


def wait_until(check: Callable[[], object], what: str, timeout: float = 300.0,
               interval: float = 0.02):
    """Poll ``check`` until it returns something true (returned); fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(interval)


def finished(port, job_id: str, timeout: float = 300.0) -> dict:
    """The job's view once it is no longer queued or running."""
    def done():
        view = get(port, f"/api/jobs/{job_id}")
        return view if view["status"] not in UNFINISHED else None
    return wait_until(done, f"job {job_id} to finish", timeout, interval=0.1)


def job_on_disk(root: Path, job_id: str) -> dict:
    """The job's job.json as the server left it (written atomically: never half a file)."""
    return json.loads((root / "jobs" / job_id / "job.json").read_text())


def while_running(root: Path, job_id: str, check: Callable[[], object]) -> Callable[[], object]:
    """``check`` for wait_until, failing at once if the job ends first (a job meant to be
    killed mid-run that finished or failed)."""
    def poll():
        if check():
            return True
        status = job_on_disk(root, job_id)["status"]
        assert status in UNFINISHED, f"job {job_id} is {status} before the kill"
        return False
    return poll


def read_json(path: Path) -> dict | None:
    """A JSON file written atomically by the library, or None before it first exists."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def test_sigterm_interrupts_cleanly_and_auto_resume_finishes(tmp_path, serve):
    root = tmp_path / "data"
    write_jsonl(root / "uploads" / "big.jsonl", articles(1500, words=40))
    server, port = serve(root)
    job = post(port, "/api/dataset/generate", {
        "source": "uploads/big.jsonl", "text_field": "article", "summary_field": "highlights",
        "id_field": "id", "name": "big", "page_size": "tiny", "workers": 1, "shard_size": 5})
    manifest = root / "datasets" / "big" / "deepsynth-manifest.json"
    wait_until(lambda: (read_json(manifest) or {}).get("splits", {}).get("train", {})
               .get("shards"), "a first shard", 60)
    server.send_signal(signal.SIGTERM)
    assert server.wait(timeout=90) == 0
    assert job_on_disk(root, job["job_id"])["status"] == "interrupted"
    written = json.loads(manifest.read_text())["splits"]["train"]
    assert written["shards"] and written["status"] != "complete"
    _, port = serve(root, "--auto-resume")
    view = finished(port, job["job_id"])
    assert view["status"] == "completed", view["error"]
    assert json.loads(manifest.read_text())["splits"]["train"]["counts"]["written"] == 1500


# Training: 8 rows, batch 2, 4 micro-batches per optimizer step (a few steps per second on
# CPU), a checkpoint every step, all kept. The kill lands once step KILL_AFTER is
# checkpointed, leaving most of the run still to do.
TRAIN_STEPS = 12
KILL_AFTER = 3
TRAIN_OPTIONS = {"dataset": "ds", "preset": "quick_test", "max_steps": TRAIN_STEPS,
                 "save_steps": 1, "eval_steps": TRAIN_STEPS, "log_steps": 1,
                 "gradient_accumulation_steps": 4, "keep_last": TRAIN_STEPS}


def latest_checkpoint(run: Path) -> int:
    """The newest complete checkpoint's step (0: none yet)."""
    return max((int(p.name.split("-")[1]) for p in (run / "checkpoints").glob("step-*")
                if (p / "trainer_state.json").exists()), default=0)


def checkpoint_files(run: Path) -> dict[int, tuple[int, int]]:
    """Complete checkpoints by step: (inode, mtime) of their trainer_state.json, which a
    checkpoint written again would change."""
    found = {}
    for state in (run / "checkpoints").glob("step-*/trainer_state.json"):
        stat = state.stat()
        found[int(state.parent.name.split("-")[1])] = (stat.st_ino, stat.st_mtime_ns)
    return found


def test_sigkill_mid_training_resume_finishes_the_same_steps_without_repeating(
        tmp_path, serve):
    root = tmp_path / "data"
    server, port = serve(root)
    dataset = post(port, "/api/benchmark/create", {
        "preset": "scitldr", "max_samples": 8, "name": "ds", "page_size": "256x256",
        "font_size": 12, "margin": 8, "workers": 1})
    assert finished(port, dataset["job_id"])["status"] == "completed"
    job = post(port, "/api/model/train", {**TRAIN_OPTIONS, "name": "m"})["job_id"]
    run = root / "models" / "m"
    wait_until(while_running(root, job, lambda: latest_checkpoint(run) >= KILL_AFTER),
               f"checkpoint {KILL_AFTER}", interval=0.01)
    server.send_signal(signal.SIGKILL)
    server.wait()
    # Killed mid-run: nobody marked the job, and the run had not finished.
    assert job_on_disk(root, job)["status"] == "running"
    assert not (run / "final").exists()
    assert latest_checkpoint(run) < TRAIN_STEPS
    before = checkpoint_files(run)

    server, port = serve(root)
    view = get(port, f"/api/jobs/{job}")  # at once: the dead owner pid is recognized
    assert view["status"] == "interrupted", view
    checkpoints = get(port, "/api/training/checkpoints?model=m")["checkpoints"]
    resumed_at = max(c["step"] for c in checkpoints)
    assert [c["step"] for c in checkpoints] == list(range(1, resumed_at + 1))
    assert KILL_AFTER <= resumed_at < TRAIN_STEPS
    assert post(port, f"/api/jobs/{job}/resume", {})["status"] in ("queued", "running")
    view = finished(port, job)
    assert view["status"] == "completed", view["error"]
    assert view["result"]["step"] == TRAIN_STEPS  # as many steps as an uninterrupted run
    assert view["result"]["training_status"] == "completed"
    assert (run / "final").is_dir()

    # It continued from the last checkpoint, once, instead of starting over: the steps done
    # before the kill were not trained again (their checkpoints are the very same files).
    lines = get(port, f"/api/jobs/{job}/logs?tail=10000")["lines"]
    resumed = [line for line in lines if "resumed from" in line]
    assert len(resumed) == 1, lines
    assert re.search(rf"resumed from \S*/checkpoints/step-{resumed_at:06d} at step "
                     rf"{resumed_at}$", resumed[0]), resumed
    assert sum("started train job" in line for line in lines) == 2
    after = checkpoint_files(run)
    assert sorted(after) == list(range(1, TRAIN_STEPS + 1))
    assert {step: after[step] for step in before} == before

    # Every optimizer step was logged exactly once: the history written before the kill is
    # truncated to the checkpoint, then appended to.
    metrics = get(port, f"/api/metrics/{job}")
    assert [r["step"] for r in metrics["history"] if "loss" in r] == list(
        range(1, TRAIN_STEPS + 1))
    assert [r["step"] for r in metrics["history"] if "eval" in r] == [TRAIN_STEPS]
    assert metrics["summary"]["steps"] == TRAIN_STEPS
    on_disk = [json.loads(line) for line in
               (run / "metrics_history.jsonl").read_text().splitlines()]
    assert on_disk == metrics["history"]


def test_sigkill_mid_generation_resume_writes_every_row_once(tmp_path, serve):
    root = tmp_path / "data"
    source = articles(1500, words=40)
    write_jsonl(root / "uploads" / "big.jsonl", source)
    server, port = serve(root)
    job = post(port, "/api/dataset/generate", {
        "source": "uploads/big.jsonl", "text_field": "article", "summary_field": "highlights",
        "id_field": "id", "name": "big", "page_size": "tiny", "workers": 1,
        "shard_size": 5})["job_id"]
    folder = root / "datasets" / "big"
    manifest = folder / "deepsynth-manifest.json"
    wait_until(while_running(root, job, lambda: (read_json(manifest) or {}).get(
        "splits", {}).get("train", {}).get("shards")), "a first shard", interval=0.005)
    server.send_signal(signal.SIGKILL)
    server.wait()
    assert job_on_disk(root, job)["status"] == "running"
    after_kill = json.loads(manifest.read_text())
    assert after_kill["splits"]["train"]["status"] != "complete"
    written_before = sum(s["rows"] for s in after_kill["splits"]["train"]["shards"])
    assert 0 < written_before < 1500

    server, port = serve(root)
    view = get(port, f"/api/jobs/{job}")
    assert view["status"] == "interrupted", view
    post(port, f"/api/jobs/{job}/resume", {})
    view = finished(port, job)
    assert view["status"] == "completed", view["error"]
    assert view["result"]["rows"] == {"train": 1500}

    final = json.loads(manifest.read_text())
    assert final["status"] == "complete"
    assert final["splits"]["train"]["counts"]["written"] == 1500
    shards = sorted((folder / "data").glob("*.parquet"))
    assert [f"data/{f.name}" for f in shards] == [
        s["file"] for s in final["splits"]["train"]["shards"]]  # no stray shard
    ids = [i for f in shards for i in pq.read_table(f, columns=["id"]).column("id").to_pylist()]
    assert len(ids) == len(set(ids)) == 1500  # no duplicate, none missing
    assert ids == [row["id"] for row in source]  # and in source order
    assert not list((folder / ".partial").glob("*"))


def test_truncated_job_json_is_listed_as_corrupt_and_the_server_stays_up(tmp_path, serve):
    root = tmp_path / "data"
    write_jsonl(root / "uploads" / "small.jsonl", articles(6, words=20))
    body = {"source": "uploads/small.jsonl", "text_field": "article",
            "summary_field": "highlights", "id_field": "id", "page_size": "tiny",
            "workers": 1}
    server, port = serve(root)
    broken, intact = (post(port, "/api/dataset/generate", {**body, "name": name})["job_id"]
                      for name in ("a", "b"))
    for job in (broken, intact):
        assert finished(port, job)["status"] == "completed"
    # A finished job's job.json cut in half, and a folder holding only half a job.json.
    text = (root / "jobs" / broken / "job.json").read_text()
    (root / "jobs" / broken / "job.json").write_text(text[:len(text) // 2])
    stray = "generate-20200101-000000-abcdef"
    (root / "jobs" / stray).mkdir()
    (root / "jobs" / stray / "job.json").write_text(text[:len(text) // 3])

    def check_serving(port):
        assert get(port, "/api/health")["status"]
        listing = get(port, "/api/jobs")
        statuses = {j["job_id"]: j["status"] for j in listing["jobs"]}
        assert listing["total"] == len(statuses)
        assert statuses[broken] == statuses[stray] == "corrupt"
        assert statuses[intact] == "completed"
        for job in (broken, stray):
            view = get(port, f"/api/jobs/{job}")
            assert view["status"] == "corrupt"
            assert view["error"].startswith("unreadable job.json"), view
        assert get(port, f"/api/jobs/{intact}")["result"]["rows"] == {"train": 6}
        assert get(port, "/api/jobs?status=corrupt")["total"] == 2

    check_serving(port)
    # A corrupt job cannot be resumed (a clean 4xx), but can be deleted; new jobs still run.
    code, error = error_status("POST", port, f"/api/jobs/{broken}/resume")
    assert 400 <= code < 500 and error["error"]
    again = post(port, "/api/dataset/generate", {**body, "name": "c"})["job_id"]
    assert finished(port, again)["status"] == "completed"
    stop(server)
    assert server.returncode == 0

    server, port = serve(root)
    check_serving(port)
    assert get(port, f"/api/jobs/{again}")["status"] == "completed"
    late = post(port, "/api/dataset/generate", {**body, "name": "d"})["job_id"]
    assert finished(port, late)["status"] == "completed"
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/jobs/{stray}",
                                     method="DELETE")
    with urllib.request.urlopen(request, timeout=30) as response:
        assert json.loads(response.read()) == {"deleted": stray}
    assert not (root / "jobs" / stray).exists()
    code, _ = error_status("GET", port, f"/api/jobs/{stray}")
    assert code == 404


# A body over waitress' cap: the headers and a first KiB of the 50 MiB promised (more, left
# unread in the server's socket when it closes, would make its kernel reset the connection).
OVERSIZED = 50 * 2**20
FIRST_PART = 2**10


def oversized_upload(port: int) -> tuple[bytes, bytes]:
    """POST /api/uploads announcing ``OVERSIZED`` bytes, sending only ``FIRST_PART``: the
    answer and what came after it. A server that buffered the body would wait for the rest
    (the socket's timeout fails the test); the cap answers from the headers alone."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as connection:
        connection.sendall(b"POST /api/uploads HTTP/1.1\r\nHost: test\r\nContent-Type: "
                           b"multipart/form-data; boundary=b\r\nContent-Length: %d\r\n\r\n"
                           % OVERSIZED + b"x" * FIRST_PART)
        received = b""
        while b"\r\n\r\n" not in received or not received.rstrip().endswith(b"}"):
            chunk = connection.recv(65536)
            assert chunk, received  # closed before a whole answer
            received += chunk
        connection.settimeout(5)
        try:
            after = connection.recv(65536)  # b"": the server closed the connection
        except ConnectionResetError:
            after = b""
    head, _, body = received.partition(b"\r\n\r\n")
    return head, body + after


def check_json_413(head: bytes, body: bytes, max_upload_mb: int) -> None:
    assert head.startswith(b"HTTP/1.1 413 "), head
    assert b"\r\ncontent-type: application/json" in head.lower(), head
    assert json.loads(body) == {
        "error": f"the request body is larger than this server accepts ({max_upload_mb} MiB)",
        "field": "body", "allowed": f"at most {max_upload_mb} MiB"}


def test_a_body_over_the_cap_is_a_json_413_before_it_is_read(tmp_path):
    from support.server import running

    from deepsynth.config.server import ServerConfig

    config = ServerConfig(data_root=str(tmp_path / "data"), max_upload_mb=1, threads=4)
    with running(config) as (_, base):
        head, body = oversized_upload(int(base.rsplit(":", 1)[1]))
        check_json_413(head, body, 1)
        assert b"\r\nconnection: close" in head.lower()
    assert not (tmp_path / "data" / "uploads").exists()  # the app never saw the request


def test_deepsynth_serve_answers_a_body_over_its_cap_with_json(serve, tmp_path):
    _, port = serve(tmp_path / "data", "--max-upload-mb", "2")
    head, body = oversized_upload(port)
    check_json_413(head, body, 2)
