"""`deepsynth serve` as a real process: SIGTERM pauses running jobs cleanly and marks them
interrupted; a restart with --auto-resume finishes them."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

from conftest import articles, write_jsonl


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(root, port, *extra) -> subprocess.Popen:
    env = {**os.environ, "DEEPSYNTH_API_TOKEN": "", "DEEPSYNTH_ALLOW_UNAUTHENTICATED": ""}
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
    raise AssertionError("server did not start")


def post(port, path, body) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method="POST",
                                     data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_sigterm_interrupts_cleanly_and_auto_resume_finishes(tmp_path):
    root = tmp_path / "data"
    write_jsonl(root / "uploads" / "big.jsonl", articles(1500, words=40))
    port = free_port()
    server = start(root, port)
    job = post(port, "/api/dataset/generate", {
        "source": "uploads/big.jsonl", "text_field": "article", "summary_field": "highlights",
        "id_field": "id", "name": "big", "page_size": "tiny", "workers": 1, "shard_size": 5})
    manifest = root / "datasets" / "big" / "deepsynth-manifest.json"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if manifest.exists() and json.loads(manifest.read_text())["splits"]["train"]["shards"]:
            break
        time.sleep(0.02)
    server.send_signal(signal.SIGTERM)
    assert server.wait(timeout=90) == 0
    state = json.loads((root / "jobs" / job["job_id"] / "job.json").read_text())
    assert state["status"] == "interrupted"
    written = json.loads(manifest.read_text())["splits"]["train"]
    assert written["shards"] and written["status"] != "complete"
    port = free_port()
    restarted = start(root, port, "--auto-resume")
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/api/jobs/{job['job_id']}") as response:
                status = json.loads(response.read())["status"]
            if status == "completed":
                break
            time.sleep(0.2)
        assert status == "completed"
        assert json.loads(manifest.read_text())["splits"]["train"]["counts"]["written"] == 1500
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.wait(timeout=60)
