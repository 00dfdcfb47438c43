"""Schemathesis with all its checks over the live ``/api/openapi.json``: 0 failures.

The real app runs on a real waitress server in a thread (``running`` from tests/support),
with an API token and both job capacities at zero, so the jobs that requests create only
queue and nothing runs. Schemathesis runs as its command line runs it (``st run --checks
all``, every check the library registers, so a check added by a new version is run too) in
all its phases: coverage (every boundary and type of every parameter and body field, plus
the methods an operation does not declare and wrong media types), fuzzing (positive and
negative), and stateful sequences following the links it infers from the 202 answers (a
submitted job, then its reads, actions and deletion). The generated path parameters and
body names are half the time things that exist (the dataset ``demo``, the queued training
job, an uploaded corpus), so the deeper checks of each operation are reached.

What "all checks" means for this API, check by check:

- ``not_a_server_error``, ``status_code_conformance``, ``content_type_conformance``,
  ``response_headers_conformance``, ``response_schema_conformance``: every answer is one
  the document lists for its operation, with its media type, headers and schema.
- ``negative_data_rejection``: what the document refuses, the server refuses.
- ``positive_data_acceptance``: what the document allows, the server does not refuse as
  bad input (400). Besides schemathesis' defaults (2xx, 3xx, 401, 403, 404, 409, 429) its
  expected statuses include 422: the documented answer to values each allowed by the
  document but refused together (a margin that leaves no room on the page, text and image
  both given) or by this server (trust_remote_code where it is not allowed), rules JSON
  Schema cannot state. A 400 for a schema-valid request still fails the check.
- ``missing_required_header``, ``unsupported_method`` (a 405 with ``Allow``),
  ``allow_header_conformance`` (OPTIONS lists exactly the documented methods).
- ``use_after_free``, ``ensure_resource_availability``: in the stateful phase, a deleted
  job stays gone and a submitted one is there.
- ``ignored_auth``: the server has a token and schemathesis sends it; for each operation
  the check also sends the request without it and with a wrong one, which must be 401.
- ``object_level_authorization``: runs, but has nothing to compare: the API has one
  identity (one token), so no identity can read another's objects.
- ``max_response_time`` (in ``all``): at most 30 s, not schemathesis' 10 s, for a loaded
  CI machine; the first chat request (which imports transformers) is made before the run.

The event stream is left out (a stream lasts 25 s; tests/test_api.py covers it).
Generation is seeded and deterministic, with no example database: the same requests on
every run, and nothing written outside the test's temporary folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("schemathesis")

from conftest import run_cli  # noqa: E402
from support.server import Client, running  # noqa: E402

from deepsynth.config.server import ServerConfig  # noqa: E402

TOKEN = "fuzz-test-token-0123456789"
# Fuzzed cases per operation and mode; the coverage phase adds its own (about 2,400 in all).
MAX_EXAMPLES = 5
EXCLUDED_PATHS = ("/api/jobs/{job_id}/events",)
# What the Hub would be asked for stays on this machine (the sandbox has no network).
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    """The server over a data root with one small dataset, an uploaded corpus and one
    queued training job."""
    root = tmp_path_factory.mktemp("fuzz")
    made = run_cli("generate", "--source", "builtin:scitldr", "--out",
                   str(root / "data" / "datasets" / "demo"), "--max-samples", "4",
                   "--page-size", "256x256", "--font-size", "12", "--margin", "8",
                   "--workers", "1")
    assert made.returncode == 0, made.stderr
    (root / "data" / "uploads").mkdir()
    (root / "data" / "uploads" / "news.jsonl").write_text(
        '{"article": "A short story about a river.", "highlights": "A river."}\n')
    config = ServerConfig(data_root=str(root / "data"), generate_capacity=0,
                          accelerator_capacity=0, threads=8, api_token=TOKEN)
    with pytest.MonkeyPatch.context() as env:
        for name, value in OFFLINE.items():
            env.setenv(name, value)
        with running(config) as (app, base):
            client = Client(base, TOKEN)
            status, job = client.call("POST", "/api/model/train", {
                "dataset": "demo", "preset": "quick_test", "max_steps": 2, "name": "demo-run"})
            assert status == 202 and job["status"] == "queued", job
            status, _ = client.call("POST", "/api/chat/validate",
                                    {"source": "uploads/news.jsonl"})
            assert status == 200  # transformers imported, the demo chat model written
            yield app, base, job["job_id"]


def schemathesis_config(job_id: str) -> str:
    """The run's schemathesis.toml."""
    excluded = "".join(f'\n[[operations]]\ninclude-path = "{path}"\nenabled = false\n'
                       for path in EXCLUDED_PATHS)
    return f"""
seed = 1
workers = 2
request-timeout = 60
headers = {{ Authorization = "Bearer {TOKEN}" }}

[generation]
max-examples = {MAX_EXAMPLES}
deterministic = true
database = "none"

[checks]
max_response_time = 30

[checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "422", "429"]
{excluded}
[dictionaries.datasets]
values = ["demo"]
[dictionaries.jobs]
values = ["{job_id}"]
[dictionaries.rows]
values = [0]
[dictionaries.sources]
values = ["uploads/news.jsonl", "datasets/demo"]

[parameters]
"path.name" = {{ dictionary = "datasets", probability = 0.5 }}
"path.job_id" = {{ dictionary = "jobs", probability = 0.5 }}
"path.index" = {{ dictionary = "rows", probability = 0.5 }}
"path.page" = {{ dictionary = "rows", probability = 0.5 }}
"body.dataset" = {{ dictionary = "datasets", probability = 0.5 }}
"body.source" = {{ dictionary = "sources", probability = 0.5 }}
"""


def test_every_schemathesis_check_passes(live_server, tmp_path):
    app, base, job_id = live_server
    hypothesis_dir = Path.cwd() / ".hypothesis"  # where Hypothesis writes by default
    existed = hypothesis_dir.exists()
    config = tmp_path / "schemathesis.toml"
    config.write_text(schemathesis_config(job_id))
    ran = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "--no-color",
         "run", f"{base}/api/openapi.json", "--checks", "all", "--report", "json",
         "--report-dir", str(tmp_path / "report"), "--output-truncate", "false"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
        env={**os.environ, **OFFLINE})
    (report_file,) = (tmp_path / "report").glob("*.json")
    report = json.loads(report_file.read_text())
    shown = ran.stdout[-12_000:] + ran.stderr[-2_000:]
    assert ran.returncode == 0 and not report["failures"] and not report["errors"], shown
    assert report["complete"] and report["stop_reason"] == "completed", shown
    operations = report["operations"]
    assert operations["tested"] == operations["selected"] >= 33, operations
    assert {name: phase["status"] for name, phase in report["phases"].items()} == {
        "examples": "skip", "coverage": "success", "fuzzing": "success",
        "stateful": "success"}, report["phases"]
    assert report["test_cases"]["generated"] >= 2000, report["test_cases"]
    jobs = app.config["JOBS"].store.all()
    assert jobs and {job.status for job in jobs} <= {"queued", "paused", "cancelled"}
    assert hypothesis_dir.exists() == existed


# schemathesis never puts NUL bytes in path parameters (by design: some servers strip them), so
# the fuzzer cannot reach these; each must be a 400 or 404 like any other bad id or source.
NUL_REQUESTS = [
    ("GET", "/api/jobs/a%00b", None), ("GET", "/api/jobs/a%00b/logs", None),
    ("GET", "/api/jobs/a%00b/samples", None), ("GET", "/api/jobs/a%00b/events", None),
    ("GET", "/api/metrics/a%00b", None), ("POST", "/api/jobs/a%00b/cancel", None),
    ("DELETE", "/api/jobs/a%00b", None), ("GET", "/api/training/checkpoints?job_id=a%00b", None),
    ("POST", "/api/sources/preview", {"source": "a\u0000b"}),
    ("POST", "/api/dataset/generate", {"name": "nul", "source": "a\u0000b"}),
]


@pytest.mark.parametrize(("method", "path", "body"), NUL_REQUESTS)
def test_nul_bytes_in_ids_and_sources_are_client_errors(live_server, method, path, body):
    _, base, _ = live_server
    status, answer = Client(base, TOKEN).call(method, path, body)
    assert status in (400, 404), (status, answer)
