"""Killed with SIGKILL mid-run, a re-run of the same command equals an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

from conftest import articles, run_cli, write_jsonl
from deepsynth.data.manifest import MANIFEST_NAME

COLUMNS = ["id", "text", "summary", "images", "num_pages", "text_tokens", "text_sha256"]


def command(source: Path, out: Path) -> list[str]:
    return ["generate", "--source", str(source), "--out", str(out), "--text-field", "article",
            "--summary-field", "highlights", "--id-field", "id", "--page-size", "tiny",
            "--shard-size", "5", "--workers", "2"]


def rows(folder: Path) -> list[dict]:
    shards = sorted((folder / "data").glob("train-*.parquet"))
    return [r for f in shards for r in pq.read_table(f, columns=COLUMNS).to_pylist()]


def wait_for_finished_shard(manifest: Path, process: subprocess.Popen) -> dict:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, "generation ended before a shard was seen"
        try:
            state = json.loads(manifest.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            state = None  # not written yet (writes are atomic, so never half-written)
        if state and state["splits"]["train"]["shards"]:
            return state
        time.sleep(0.005)
    raise AssertionError("no finished shard within 120 s")


def test_resume_after_sigkill_equals_uninterrupted_run(tmp_path):
    source = write_jsonl(tmp_path / "corpus.jsonl", articles(1200, words=40))
    killed = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-m", "deepsynth", *command(source, killed)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        state = wait_for_finished_shard(killed / MANIFEST_NAME, process)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the main process and its workers
        process.wait()
    after_kill = json.loads((killed / MANIFEST_NAME).read_text())
    assert after_kill["status"] == "in_progress"
    finished = after_kill["splits"]["train"]["shards"]
    assert len(finished) >= len(state["splits"]["train"]["shards"]) >= 1
    assert after_kill["splits"]["train"]["status"] != "complete"
    first = killed / finished[0]["file"]
    first_stat = first.stat()

    resumed = run_cli(*command(source, killed))
    assert resumed.returncode == 0, resumed.stderr
    already = sum(s["rows"] for s in finished)
    assert f"{already} rows already written" in resumed.stderr
    # The finished shard was neither rewritten nor re-rendered.
    assert first.stat().st_mtime_ns == first_stat.st_mtime_ns
    assert first.stat().st_ino == first_stat.st_ino

    clean = tmp_path / "clean"
    assert run_cli(*command(source, clean)).returncode == 0
    resumed_rows, clean_rows = rows(killed), rows(clean)
    assert len(clean_rows) == 1200
    assert [r["id"] for r in resumed_rows] == [r["id"] for r in clean_rows]
    assert resumed_rows == clean_rows  # text, summary, page bytes and stats all identical
    final = json.loads((killed / MANIFEST_NAME).read_text())
    assert final["status"] == "complete"
    assert final["splits"]["train"]["counts"] == json.loads(
        (clean / MANIFEST_NAME).read_text())["splits"]["train"]["counts"]
    assert not list((killed / ".partial").glob("*"))
