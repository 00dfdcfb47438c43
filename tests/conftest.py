"""Shared test helpers: run the real CLI in a subprocess, write small corpora."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.ui import browser, page  # noqa: F401 (the browser tests' fixtures)


def run_cli(*args: str, env: dict | None = None, timeout: float = 300,
            cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``deepsynth ARGS`` in a fresh interpreter, as a user would run it."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "deepsynth", *args], capture_output=True,
                          text=True, timeout=timeout, env=full_env, cwd=cwd)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def articles(count: int, words: int = 60, prefix: str = "doc") -> list[dict]:
    """Distinct small documents with summaries and ids."""
    vocabulary = ("market city report council river energy school police weather budget "
                  "station museum festival harbour railway library hospital garden").split()
    rows = []
    for i in range(count):
        body = " ".join(vocabulary[(i * 7 + j * 3) % len(vocabulary)] for j in range(words))
        rows.append({"id": f"{prefix}-{i}", "article": f"Story {prefix}-{i}. {body}.",
                     "highlights": f"Summary of story {i}."})
    return rows


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A data root of the module's own, named by DEEPSYNTH_DATA_ROOT while its tests run
    (files that need another kind define their own ``root``)."""
    folder = tmp_path_factory.mktemp("data-root")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DEEPSYNTH_DATA_ROOT", str(folder))
        yield folder


@pytest.fixture
def cli():
    return run_cli


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item (the UI tests screenshot failures)."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
