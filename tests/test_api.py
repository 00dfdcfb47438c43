"""The REST API on a real waitress server in a thread, with the real job manager and jobs."""

from __future__ import annotations

import json
import re
import shutil
import time
import urllib.error
import urllib.request

import pytest
from support.server import TOKEN, Client, HubDouble, running, wait_job

from deepsynth.config.server import ServerConfig


@pytest.fixture
def api(tmp_path):
    with running(ServerConfig(data_root=str(tmp_path / "data"), threads=8)) as (app, base):
        yield Client(base), app


def test_health_and_presets(api):
    client, _ = api
    status, health = client.call("GET", "/api/health")
    assert status == 200 and health["role"] == "all" and health["device"]["type"] == "cpu"
    status, presets = client.call("GET", "/api/datasets/presets")
    assert status == 200 and {p["name"] for p in presets["presets"]} >= {"scitldr", "xsum"}
    status, lora = client.call("POST", "/api/lora/presets/recommended", {"num_samples": 30})
    assert status == 200 and lora["lora_preset"] == "balanced"


def test_benchmark_dataset_then_training_job_through_the_api(api):
    client, app = api
    status, created = client.call("POST", "/api/benchmark/create", {
        "preset": "scitldr", "max_samples": 6, "name": "scitldr-demo",
        "page_size": "256x256", "font_size": 12, "margin": 8, "workers": 1})
    assert status == 202, created
    assert created["kind"] == "generate" and created["dataset"] == "scitldr-demo"
    assert wait_job(client, created["job_id"])["status"] == "completed"
    status, listing = client.call("GET", "/api/datasets")
    assert status == 200 and listing["total"] == 1
    assert listing["datasets"][0]["status"] == "ready"
    assert listing["datasets"][0]["splits"] == {"validation": 6, "train": 6}
    status, started = client.call("POST", "/api/model/train", {
        "dataset": "scitldr-demo", "model": "tiny-deepseek-ocr-2", "trainer_type": "production",
        "preset": "quick_test", "max_steps": 4, "save_steps": 2, "eval_steps": 4,
        "peft": "lora", "lora_preset": "high_capacity_moe", "expert_dropout_rate": 0.1,
        "gate_dropout_rate": 0.05, "name": "demo-model"})
    assert status == 202, started
    assert started["kind"] == "train" and started["model"] == "demo-model"
    job = wait_job(client, started["job_id"])
    assert job["status"] == "completed", job["error"]
    status, metrics = client.call("GET", f"/api/metrics/{started['job_id']}?since=2")
    assert status == 200 and [h["step"] for h in metrics["history"] if "loss" in h] == [3, 4]
    assert metrics["summary"]["steps"] == 4
    status, models = client.call("GET", "/api/models")
    assert status == 200 and models["models"][0]["name"] == "demo-model"
    status, saved = client.call("GET", f"/api/training/checkpoints?job_id={started['job_id']}")
    assert status == 200 and [c["step"] for c in saved["checkpoints"]] == [2, 4]
    status, gallery = client.call("GET", f"/api/jobs/{started['job_id']}/samples")
    assert status == 200 and gallery["step"] == 4 and gallery["best"] and gallery["worst"]
    status, summary = client.call("POST", "/api/summarize", {
        "model": "demo-model", "text": "A short document about rivers."})
    assert status == 200 and isinstance(summary["summary"], str)
    assert summary["randomly_initialized_base"] is True
    # Side by side (the playground): a run with the same weights reads the same page the
    # same way, so its summary is the same; the base model is named after the config's.
    models = app.config["WORKSPACE"].models
    shutil.copytree(models / "demo-model", models / "demo-twin")
    status, both = client.call("POST", "/api/summarize", {
        "model": "demo-model", "text": "A short document about rivers.",
        "compare_with": "demo-twin"})
    assert status == 200, both
    assert both["comparison"]["model"] == "demo-twin"
    assert both["comparison"]["summary"] == both["summary"] == summary["summary"]
    status, beside = client.call("POST", "/api/summarize", {
        "model": "demo-model", "text": "A short document about rivers.",
        "compare_with": "base"})
    assert status == 200 and beside["comparison"]["model"] == "base: tiny-deepseek-ocr-2"
    shutil.rmtree(models / "demo-twin")
    status, evaluation = client.call("POST", "/api/evaluate", {
        "model": "demo-model", "dataset": "scitldr-demo", "max_samples": 2})
    assert status == 202
    done = wait_job(client, evaluation["job_id"])
    assert done["status"] == "completed", done["error"]
    assert done["result"]["samples"] == 2 and "rouge1" in done["result"]
    status, _ = client.call("DELETE", "/api/models/demo-model")
    assert status == 200
    assert client.call("GET", "/api/models")[1]["total"] == 0
    status, _ = client.call("DELETE", "/api/datasets/scitldr-demo")
    assert status == 200
    status, config = client.call("GET", "/api/training/optimal-config/cpu_demo")
    assert status == 200 and config["config"]["max_steps"] == 300


def test_bad_requests_are_400s_naming_the_field(api):
    client, app = api
    app.config["WORKSPACE"].datasets.mkdir(parents=True)
    status, error = client.call("POST", "/api/benchmark/create", {"preset": "nope"})
    assert status == 400 and error["field"] == "preset" and "scitldr" in error["allowed"]
    status, error = client.call("POST", "/api/dataset/generate", {
        "name": "x", "source": "builtin:scitldr", "font_size": 1000})
    assert status == 400 and error["field"] == "render.font_size"
    assert error["allowed"] == "6-96"
    status, error = client.call("POST", "/api/dataset/generate", {
        "name": "../escape", "source": "builtin:scitldr"})
    assert status == 400 and error["field"] == "name"
    status, error = client.call("POST", "/api/dataset/generate", {
        "name": "x", "source": "../../etc/passwd"})
    assert status == 404 and error["field"] == "source"  # names no file under the data root
    status, error = client.call("POST", "/api/dataset/generate", {
        "name": "x", "source": "builtin:scitldr", "colour": "red"})
    assert status == 400 and "colour" in error["error"]
    status, error = client.call("POST", "/api/lora/presets/recommended", {"num_samples": 0})
    assert status == 400 and error["field"] == "num_samples"
    status, error = client.call("GET", "/api/jobs/does-not-exist")
    assert status == 404
    status, error = client.call("GET", "/api/jobs?limit=0")
    assert status == 400 and error["field"] == "limit"


def test_invalid_transitions_are_409s(api):
    client, _ = api
    status, created = client.call("POST", "/api/benchmark/create", {
        "preset": "scitldr", "max_samples": 2, "page_size": "tiny", "workers": 1})
    assert status == 202
    assert wait_job(client, created["job_id"])["status"] == "completed"
    status, error = client.call("POST", f"/api/jobs/{created['job_id']}/pause")
    assert status == 409 and "completed" in error["error"]
    status, deleted = client.call("DELETE", f"/api/jobs/{created['job_id']}")
    assert status == 200 and deleted["deleted"] == created["job_id"]


def test_token_is_required_when_configured(tmp_path):
    with running(ServerConfig(data_root=str(tmp_path / "d"), api_token=TOKEN)) as (app, base):
        client = Client(base)
        assert client.call("GET", "/api/health")[0] == 200  # liveness stays open
        assert client.call("GET", "/api/jobs")[0] == 401
        assert client.call("GET", "/api/jobs", token="wrong")[0] == 401
        status, jobs = client.call("GET", "/api/jobs", token=TOKEN)
        assert status == 200 and jobs["total"] == 0


def test_serving_beyond_loopback_needs_a_token(tmp_path):
    from conftest import run_cli

    refused = run_cli("serve", "--host", "0.0.0.0", "--data-root", str(tmp_path),
                      env={"DEEPSYNTH_API_TOKEN": "", "DEEPSYNTH_ALLOW_UNAUTHENTICATED": ""})
    assert refused.returncode == 2 and "DEEPSYNTH_API_TOKEN" in refused.stderr


def upload(base: str, name: str, content: bytes) -> tuple[int, dict]:
    boundary = "deepsynthtestboundary"
    payload = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
               f"filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
               ).encode() + content + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(base + "/api/uploads", data=payload, method="POST")
    request.add_header("Content-Type", f"multipart/form-data; boundary={boundary}")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_render_preview(api):
    client, _ = api
    status, preview = client.call("POST", "/api/render/preview", {
        "text": "Hello, wörld. Привет. 你好。", "page_size": "tiny"})
    assert status == 200
    assert preview["stats"]["num_pages"] == len(preview["pages"]) == 1
    assert preview["stats"]["missing_glyphs"] == 0
    assert preview["pages"][0].startswith("data:image/png;base64,")
    assert preview["stats"]["vision_tokens"] == 257  # DeepSeek-OCR-2, image mode global
    assert preview["vision_tokens_per_page"] == [  # a 512 px page: smaller than a tile
        {"model": "DeepSeek-OCR-2", "global": 257, "crops": 257},
        {"model": "DeepSeek-OCR v1", "global": 273, "crops": 273},
        {"model": "Unlimited-OCR", "global": 273, "crops": 273}]
    status, error = client.call("POST", "/api/render/preview", {"text": "x", "margin": -1})
    assert status == 400 and error["field"] == "margin"


def test_upload_preview_generate_and_browse_pages(tmp_path):
    from conftest import articles

    with running(ServerConfig(data_root=str(tmp_path / "d"), max_upload_mb=1)) as (app, base):
        client = Client(base)
        corpus = "".join(json.dumps(r) + "\n" for r in articles(4)).encode()
        status, stored = upload(base, "news.jsonl", corpus)
        assert status == 201 and stored["source"] == "uploads/news.jsonl"
        assert upload(base, "../evil.jsonl", corpus)[0] == 422  # the file's name: not a schema's
        assert upload(base, "notes.exe", corpus)[0] == 422
        # Over the app's 1 MiB, under waitress' cap (tests/test_serve.py: over the cap).
        status, refused = upload(base, "big.jsonl", b"x" * (3 * 2**19))
        assert status == 413 and refused["field"] == "body", refused
        status, preview = client.call("POST", "/api/sources/preview",
                                      {"source": "uploads/news.jsonl"})
        assert status == 200 and preview["splits"] == ["train"]
        assert preview["columns"] == ["article", "highlights", "id"]
        assert len(preview["rows"]) == 4
        # A file names no fields: they are guessed from the column names, for the form.
        assert preview["fields"] == {"text": "article", "summary": "highlights", "id": "id"}
        assert preview["fields_from"] == "column names"
        assert preview["format"] == "JSON Lines"
        status, created = client.call("POST", "/api/dataset/generate", {
            "source": "uploads/news.jsonl", "text_field": "article",
            "summary_field": "highlights", "id_field": "id", "name": "mine",
            "page_size": "tiny", "workers": 1})
        assert status == 202
        assert wait_job(client, created["job_id"])["status"] == "completed"
        status, rows = client.call("GET", "/api/datasets/mine/samples?split=train&limit=2")
        assert status == 200 and [r["id"] for r in rows["samples"]] == ["doc-0", "doc-1"]
        assert rows["total"] == 4 and rows["samples"][0]["pages"] >= 1
        with urllib.request.urlopen(base + "/api/datasets/mine/samples/1/pages/0.png") as r:
            assert r.headers["Content-Type"] == "image/png"
            assert r.read().startswith(b"\x89PNG")
        status, _ = client.call("GET", "/api/datasets/mine/samples/9/pages/0.png")
        assert status == 404


def test_datasets_in_use_cannot_be_deleted_or_trained_on(tmp_path):
    from conftest import articles

    with running(ServerConfig(data_root=str(tmp_path / "d"))) as (app, base):
        client = Client(base)
        corpus = "".join(json.dumps(r) + "\n" for r in articles(1500, words=40)).encode()
        assert upload(base, "big.jsonl", corpus)[0] == 201
        status, created = client.call("POST", "/api/dataset/generate", {
            "source": "uploads/big.jsonl", "text_field": "article",
            "summary_field": "highlights", "name": "big", "page_size": "tiny",
            "workers": 1, "shard_size": 5})
        assert status == 202
        manifest = tmp_path / "d" / "datasets" / "big" / "deepsynth-manifest.json"
        deadline = time.monotonic() + 60
        while not manifest.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        status, error = client.call("DELETE", "/api/datasets/big")
        assert status == 409 and created["job_id"] in error["error"]
        status, error = client.call("POST", "/api/model/train", {"dataset": "big",
                                                                 "preset": "quick_test"})
        assert status == 409 and "still being written" in error["error"]
        status, error = client.call("POST", "/api/dataset/generate", {
            "source": "uploads/big.jsonl", "text_field": "article",
            "summary_field": "highlights", "name": "big"})
        assert status == 409  # the same output twice
        assert client.call("POST", f"/api/jobs/{created['job_id']}/cancel")[0] == 200
        assert wait_job(client, created["job_id"])["status"] == "cancelled"
        assert client.call("DELETE", "/api/datasets/big")[0] == 200


def read_events(response, stop_after: int = 100, timeout: float = 30.0) -> list[dict]:
    """Parse server-sent events from an open response, as they arrive."""
    events, current = [], {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(events) < stop_after:
        line = response.readline()
        if not line:
            break
        line = line.decode().rstrip("\n")
        if not line:
            if "data" in current:
                events.append(current)
            current = {}
            continue
        key, _, value = line.partition(": ")
        current[key] = value
    return events


def test_event_stream_is_live_and_limited(tmp_path):
    from conftest import articles

    with running(ServerConfig(data_root=str(tmp_path / "d"), threads=4)) as (app, base):
        client = Client(base)
        corpus = "".join(json.dumps(r) + "\n" for r in articles(1500, words=40)).encode()
        assert upload(base, "big.jsonl", corpus)[0] == 201
        status, created = client.call("POST", "/api/dataset/generate", {
            "source": "uploads/big.jsonl", "text_field": "article",
            "summary_field": "highlights", "name": "big", "page_size": "tiny",
            "workers": 1, "shard_size": 5})
        job_id = created["job_id"]
        stream = urllib.request.urlopen(f"{base}/api/jobs/{job_id}/events", timeout=30)
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        first = read_events(stream, stop_after=3)
        assert first and first[0]["event"] == "job"
        assert json.loads(first[-1]["data"])["status"] in ("queued", "running")  # live
        # threads=4 allows one stream at a time: a second one is refused, not queued.
        status, error = client.call("GET", f"/api/jobs/{job_id}/events")
        assert status == 503 and "poll" in error["error"]
        client.call("POST", f"/api/jobs/{job_id}/pause")
        rest = read_events(stream)
        assert json.loads(rest[-1]["data"])["status"] == "paused"  # then the stream ends
        stream.close()
        assert client.call("GET", f"/api/jobs/{job_id}")[1]["status"] == "paused"
        assert client.call("POST", f"/api/jobs/{job_id}/cancel")[0] == 200


def test_metric_events_resume_after_last_event_id(tmp_path):
    with running(ServerConfig(data_root=str(tmp_path / "d"))) as (app, base):
        client = Client(base)
        status, created = client.call("POST", "/api/benchmark/create", {
            "preset": "scitldr", "max_samples": 4, "name": "ds", "page_size": "256x256",
            "font_size": 12, "margin": 8, "workers": 1})
        assert wait_job(client, created["job_id"])["status"] == "completed"
        status, started = client.call("POST", "/api/model/train", {
            "dataset": "ds", "preset": "quick_test", "max_steps": 3, "eval_steps": 3,
            "name": "m"})
        assert wait_job(client, started["job_id"])["status"] == "completed"
        url = f"{base}/api/jobs/{started['job_id']}/events"
        with urllib.request.urlopen(url, timeout=30) as stream:
            every = [e for e in read_events(stream) if e["event"] == "metrics"]
        assert [e["id"] for e in every][:3] == ["m1", "m2", "m3"]
        request = urllib.request.Request(url, headers={"Last-Event-ID": "m2"})
        with urllib.request.urlopen(request, timeout=30) as stream:
            later = [e for e in read_events(stream) if e["event"] == "metrics"]
        assert later[0]["id"] == "m3" and len(later) == len(every) - 2
        assert json.loads(later[0]["data"])["step"] == 3


def test_work_for_the_other_role_names_that_service(tmp_path):
    config = ServerConfig(data_root=str(tmp_path / "d"), role="cpu",
                          gpu_service_url="http://gpu.example:5001")
    with running(config) as (app, base):
        client = Client(base)
        datasets = tmp_path / "d" / "datasets" / "ds"
        datasets.mkdir(parents=True)
        (datasets / "deepsynth-manifest.json").write_text("{}")
        status, error = client.call("POST", "/api/model/train", {"dataset": "ds"})
        assert status == 409 and error["service"] == "http://gpu.example:5001"
        assert "does not run train jobs" in error["error"]


def test_openapi_document_covers_every_route_and_matches_validation(api):
    client, app = api
    from openapi_spec_validator import validate

    status, spec = client.call("GET", "/api/openapi.json")
    assert status == 200 and spec["openapi"] == "3.1.0"
    validate(spec)  # a valid OpenAPI 3.1 document
    routes = {(rule.rule, method.lower()) for rule in app.url_map.iter_rules()
              if rule.rule.startswith("/api/")
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    documented = {(path, method) for path, operations in spec["paths"].items()
                  for method in operations}
    as_rules = {(p.replace("{", "<").replace("}", ">"), m) for p, m in documented}
    normalized = {(re.sub(r"<[^<>]*:", "<", r), m) for r, m in routes}  # <int:index>: <index>
    assert as_rules == normalized
    train = spec["paths"]["/api/model/train"]["post"]["requestBody"]["content"][
        "application/json"]["schema"]
    dropout = train["properties"]["expert_dropout_rate"]
    assert (dropout["minimum"], dropout["maximum"]) == (0.0, 1.0)
    assert train["properties"]["peft"]["enum"] == ["lora", "qlora", "dora", "adalora", "full"]
    assert train["additionalProperties"] is False and "dataset" in train["required"]
    generate = spec["paths"]["/api/dataset/generate"]["post"]["requestBody"]["content"][
        "application/json"]["schema"]
    assert {"source", "text_field", "page_size", "font_size", "shard_size", "name"} <= set(
        generate["properties"])
    # What the document allows, the server accepts: a field at its documented maximum.
    status, error = client.call("POST", "/api/dataset/generate", {
        "name": "x", "source": "builtin:scitldr",
        "font_size": generate["properties"]["font_size"]["maximum"] + 1})
    assert status == 400 and error["field"] == "render.font_size"


def test_push_endpoints_use_the_token_in_memory_only(tmp_path):
    """Uses HubDouble, a test double of the Hub client."""
    from deepsynth.jobs.kinds import job_kinds
    from deepsynth.jobs.manager import JobManager
    from deepsynth.jobs.state import JobStore

    root = tmp_path / "d"
    manager = JobManager(JobStore(root / "jobs"), job_kinds(root, hub=HubDouble))
    secret = "hf_PLANTED_SECRET_TOKEN_987"
    with running(ServerConfig(data_root=str(root)), manager=manager) as (app, base):
        client = Client(base)
        status, made = client.call("POST", "/api/benchmark/create", {
            "preset": "scitldr", "max_samples": 3, "name": "ds", "page_size": "256x256",
            "font_size": 12, "margin": 8, "workers": 1})
        assert wait_job(client, made["job_id"])["status"] == "completed"
        status, pushed = client.call("POST", "/api/datasets/ds/push", {
            "repo_id": "me/ds", "hf_token": secret})
        assert status == 202, pushed
        done = wait_job(client, pushed["job_id"])
        assert done["status"] == "completed", done["error"]
        hub = HubDouble.instances[-1]
        assert hub.token == secret and hub.repo_type == "dataset"
        assert hub.created == [("me/ds", True)]
        assert {"README.md", "deepsynth-manifest.json"} <= set(hub.uploaded)
        assert any(p.startswith("data/") for p in hub.uploaded)
        status, error = client.call("POST", "/api/datasets/ds/push", {"repo_id": "bad"})
        assert status == 400 and error["field"] == "repo_id"
        # Training on a Hub dataset downloads it (here: what the double received) first.
        status, error = client.call("POST", "/api/model/train", {
            "dataset": "hf:not a repo", "preset": "quick_test"})
        assert status == 400 and error["field"] == "dataset"
        status, started = client.call("POST", "/api/model/train", {
            "dataset": "hf:me/ds", "preset": "quick_test", "max_steps": 1, "eval_steps": 1,
            "hf_token": secret})
        assert status == 202 and started["model"].startswith("hf-me-ds-"), started
        from_hub = wait_job(client, started["job_id"])
        assert from_hub["status"] == "completed", from_hub["error"]
        assert (root / "cache/hub-datasets/me--ds/deepsynth-manifest.json").exists()
        assert HubDouble.instances[-1].token == secret
        status, error = client.call("POST", "/api/model/train", {
            "dataset": "ds", "preset": "quick_test", "push_to_hub": True, "name": "m"})
        assert status == 422 and error["field"] == "hub_model_id"
        status, started = client.call("POST", "/api/model/train", {
            "dataset": "ds", "preset": "quick_test", "max_steps": 2, "eval_steps": 2,
            "name": "m", "push_to_hub": True, "hub_model_id": "me/trained",
            "hf_token": secret})
        assert status == 202, started
        trained = wait_job(client, started["job_id"])
        assert trained["status"] == "completed", trained["error"]
        assert trained["result"]["hub"]["pushed_to"] == "me/trained"
        hub = HubDouble.instances[-1]
        assert (hub.token, hub.repo_type, hub.created) == (secret, "model",
                                                           [("me/trained", True)])
        assert "model.safetensors" in hub.uploaded
        status, pushed = client.call("POST", "/api/models/m/push", {
            "repo_id": "me/m", "hf_token": secret, "public": True})
        assert status == 202
        assert wait_job(client, pushed["job_id"])["status"] == "completed"
        hub = HubDouble.instances[-1]
        assert hub.repo_type == "model" and hub.created == [("me/m", False)]
        assert "model.safetensors" in hub.uploaded
        # The planted token is in no file and no API response.
        for path in root.rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), path
        for path in ("/api/jobs", f"/api/jobs/{pushed['job_id']}",
                     f"/api/jobs/{pushed['job_id']}/logs", "/api/datasets", "/api/models"):
            assert secret not in json.dumps(client.call("GET", path)[1])


def test_train_resumes_from_a_named_checkpoint_confined_to_the_models_folder(api):
    client, app = api
    status, made = client.call("POST", "/api/benchmark/create", {
        "preset": "scitldr", "max_samples": 4, "name": "ds", "page_size": "256x256",
        "font_size": 12, "margin": 8, "workers": 1})
    assert wait_job(client, made["job_id"])["status"] == "completed"
    status, first = client.call("POST", "/api/model/train", {
        "dataset": "ds", "preset": "quick_test", "max_steps": 2, "save_steps": 1,
        "eval_steps": 2, "name": "first"})
    assert wait_job(client, first["job_id"])["status"] == "completed"
    status, listed = client.call("GET", "/api/training/checkpoints?model=first")
    assert status == 200 and [c["step"] for c in listed["checkpoints"]] == [1, 2]
    ref = listed["checkpoints"][0]["ref"]
    assert ref == "first/step-000001"
    for bad in ("../first/step-000001", "/etc/step-000001", "first/step-000009",
                "latest", "first/../../x", 7):
        status, error = client.call("POST", "/api/model/train", {
            "dataset": "ds", "preset": "quick_test", "max_steps": 3, "name": "second",
            "resume_from_checkpoint": bad})
        # A string that names no checkpoint of the models folder is a 404; 7, a 400.
        assert status == (400 if bad == 7 else 404), (bad, error)
        assert error["field"] == "resume_from_checkpoint", (bad, error)
    status, second = client.call("POST", "/api/model/train", {
        "dataset": "ds", "preset": "quick_test", "max_steps": 3, "eval_steps": 3,
        "name": "second", "resume_from_checkpoint": ref})
    assert status == 202, second
    done = wait_job(client, second["job_id"])
    assert done["status"] == "completed" and done["result"]["step"] == 3
    status, logs = client.call("GET", f"/api/jobs/{second['job_id']}/logs")
    assert "at step 1" in json.dumps(logs)
    history = client.call("GET", f"/api/metrics/{second['job_id']}")[1]["history"]
    assert [row["step"] for row in history if "loss" in row][0] == 2


def test_browser_session_cookie_and_csrf_header(tmp_path):
    import http.cookiejar

    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    config = ServerConfig(data_root=str(tmp_path / "d"), api_token=TOKEN)
    with running(config) as (app, base):
        def call(method, path, body=None, headers=None):
            data = None if body is None else json.dumps(body).encode()
            request = urllib.request.Request(
                base + path, method=method, data=data,
                headers={"Content-Type": "application/json", **(headers or {})})
            try:
                with opener.open(request, timeout=30) as response:
                    return response.status, response.headers
            except urllib.error.HTTPError as error:
                return error.code, error.headers

        assert call("POST", "/api/login", {"token": "wrong"})[0] == 401
        status, headers = call("POST", "/api/login", {"token": TOKEN})
        assert status == 200
        cookie = headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert TOKEN not in cookie
        assert call("GET", "/api/jobs")[0] == 200  # reading with the cookie
        assert call("DELETE", "/api/jobs/x")[0] == 403  # changing state without the header
        assert call("DELETE", "/api/jobs/x", headers={"X-DeepSynth-CSRF": "1"})[0] == 404


def test_a_training_request_is_resolved_once_and_stored_as_its_config(tmp_path):
    """The job's record holds the complete config the view resolved (names turned into
    paths under the data root, every preset value filled in), never the Hub token."""
    root = tmp_path / "data"
    config = ServerConfig(data_root=str(root), accelerator_capacity=0)
    with running(config) as (app, base):
        client = Client(base)
        (root / "datasets" / "ds").mkdir(parents=True)
        (root / "datasets" / "ds" / "deepsynth-manifest.json").write_text("{}")
        status, made = client.call("POST", "/api/model/train", {
            "dataset": "ds", "preset": "quick_test", "max_steps": 3, "name": "run",
            "hf_token": "hf_NOT_STORED_123"})
        assert status == 202 and made["model"] == "run" and made["status"] == "queued", made
        assert made["job"]["config"]["training"]["dataset"] == "datasets/ds"  # as shown
        stored = app.config["JOBS"].store.load(made["job_id"]).config  # as stored
        assert set(stored) == {"name", "training"} and stored["name"] == "run"
        training = stored["training"]
        assert training["dataset"] == str(app.config["WORKSPACE"].dataset("ds"))
        assert training["out"] == str(app.config["WORKSPACE"].run_folder("run").path)
        assert training["max_steps"] == 3 and training["preset"] == "quick_test"
        assert "hf_NOT_STORED_123" not in (root / "jobs" / made["job_id"] / "job.json").read_text()
        assert [r.job_id for r in app.config["JOBS"].jobs_using(dataset="ds")] == [made["job_id"]]
