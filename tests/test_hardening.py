"""Hostile and careless clients against a real server: every bad input is a 4xx, nothing a
request names reaches outside the data root, and no single request or file bricks the
service (health, listings and submissions keep answering)."""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from deepsynth.config.server import ServerConfig
from support.server import Client, running, wait_job

SURROGATE_FIELDS = [
    ("/api/model/train", "eval_split"), ("/api/model/train", "train_split"),
    ("/api/model/train", "prompt"), ("/api/dataset/generate", "text_field"),
    ("/api/dataset/generate", "summary_field"), ("/api/dataset/generate", "id_field"),
    ("/api/dataset/generate", "font"),
]


def raw_call(base: str, method: str, path: str, data: bytes | None,
             content_type: str = "application/json") -> tuple[int, dict | None, dict]:
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            body = response.read()
            return response.status, json.loads(body or b"null"), dict(response.headers)
    except urllib.error.HTTPError as error:
        body = error.read()
        try:
            parsed = json.loads(body or b"null")
        except ValueError:
            parsed = {"not_json": body[:200].decode(errors="replace")}
        return error.code, parsed, dict(error.headers)


FIELDS = {"text_field": "article", "summary_field": "highlights"}  # news.jsonl's columns


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "data"
    uploads = root / "uploads"
    uploads.mkdir(parents=True)
    (uploads / "news.jsonl").write_text(json.dumps(
        {"article": "A short story about a river.", "highlights": "A river."}) + "\n")
    with running(ServerConfig(data_root=str(root), threads=8, generate_capacity=0,
                              accelerator_capacity=0)) as (app, base):
        yield Client(base), app, base, root


def assert_healthy(client: Client) -> None:
    assert client.call("GET", "/api/health")[0] == 200
    assert client.call("GET", "/api/jobs")[0] == 200
    assert client.call("GET", "/api/datasets")[0] == 200
    assert client.call("GET", "/api/models")[0] == 200


@pytest.mark.parametrize("path,field", SURROGATE_FIELDS)
@pytest.mark.parametrize("value", ["\ud800", "a\x00b"], ids=["surrogate", "nul"])
def test_unstorable_strings_are_400_naming_the_field(server, path, field, value):
    client, _, base, root = server
    if path == "/api/model/train":
        body = {"dataset": "uploads/news.jsonl", "trainer_type": "generic", field: value}
    else:
        body = {"source": "uploads/news.jsonl", "name": "ds", field: value}
    status, answer, _ = raw_call(base, "POST", path, json.dumps(body).encode())
    assert status == 400, answer
    assert field in (answer.get("field") or ""), answer
    assert_healthy(client)
    jobs = root / "jobs"
    assert all((folder / "job.json").is_file() for folder in jobs.iterdir()) if jobs.is_dir() \
        else True


@pytest.mark.parametrize("field", ["max_steps", "seed", "batch_size", "max_length"])
def test_integers_with_hundreds_of_digits_are_400(server, field):
    client, _, base, _ = server
    text = ('{"dataset": "uploads/news.jsonl", "trainer_type": "generic", "%s": %s}'
            % (field, "9" * 400))
    status, answer, _ = raw_call(base, "POST", "/api/model/train", text.encode())
    assert status == 400 and answer["field"] == field, answer


@pytest.mark.parametrize("path", ["/api/model/train", "/api/dataset/generate",
                                  "/api/render/preview", "/api/chat/validate"])
def test_deeply_nested_json_is_400(server, path):
    _, _, base, _ = server
    text = '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}"
    status, answer, _ = raw_call(base, "POST", path, text.encode())
    assert status == 400, answer
    assert "nest" in answer["error"], answer


@pytest.mark.parametrize("field", ["model", "preset"])
@pytest.mark.parametrize("value", [["tiny-chat-lm"], {"a": 1}], ids=["list", "object"])
def test_non_scalars_where_scalars_go_are_400(server, field, value):
    client, _, _, _ = server
    status, answer = client.call("POST", "/api/model/train", {
        "dataset": "uploads/news.jsonl", "trainer_type": "generic", field: value})
    assert status == 400 and answer["field"] == field, answer


def test_a_job_folder_without_job_json_is_listed_corrupt(server):
    client, _, _, root = server
    (root / "jobs" / "generate-20260101-000000-abcdef").mkdir(parents=True)
    status, listing = client.call("GET", "/api/jobs")
    assert status == 200, listing
    [job] = [j for j in listing["jobs"] if j["job_id"] == "generate-20260101-000000-abcdef"]
    assert job["status"] == "corrupt" and "job.json" in job["error"]
    assert client.call("DELETE", "/api/jobs/generate-20260101-000000-abcdef")[0] == 200


CHURN_SECONDS = 20


def test_listing_under_concurrent_submit_and_delete(server):
    """8 threads submit, cancel, delete and list for 20 s: no listing fails, nothing is a
    5xx; afterwards the heartbeat thread lives and the scheduler still starts work (given a
    slot, one more generation runs to completion). Prints the figures."""
    client, app, _, _ = server
    manager = app.config["JOBS"]
    failed_listings: list = []
    server_errors: list = []
    done = [{"listings": 0, "submitted": 0, "deleted": 0} for _ in range(8)]
    stop = time.monotonic() + CHURN_SECONDS

    def churn(worker: int):
        counts = done[worker]
        while time.monotonic() < stop:
            if worker % 2:
                status, answer = client.call("GET", "/api/jobs")
                counts["listings"] += 1
                if status != 200:
                    failed_listings.append((status, answer))
                continue
            status, answer = client.call("POST", "/api/dataset/generate", {
                "source": "uploads/news.jsonl", "name": f"c{worker}-{counts['submitted']}",
                **FIELDS})
            counts["submitted"] += 1
            if status == 202:
                client.call("POST", f"/api/jobs/{answer['job_id']}/cancel")
                deleted = client.call("DELETE", f"/api/jobs/{answer['job_id']}")[0]
                counts["deleted"] += deleted == 200
            elif status >= 500:
                server_errors.append((status, answer))

    threads = [threading.Thread(target=churn, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(CHURN_SECONDS + 60)
    totals = {key: sum(counts[key] for counts in done) for key in done[0]}
    print(f"{CHURN_SECONDS} s, 8 threads: {totals['listings']} listings, "
          f"{len(failed_listings)} failed; {totals['submitted']} submitted, "
          f"{totals['deleted']} deleted, {len(server_errors)} server errors")
    assert not failed_listings and not server_errors, (failed_listings + server_errors)[:3]
    assert totals["listings"] > 40 and totals["deleted"] > 10, totals
    assert_healthy(client)
    assert manager._heartbeat.is_alive()
    assert_scheduler_starts_work(client, manager)
    assert manager._heartbeat.is_alive()


def assert_scheduler_starts_work(client: Client, manager) -> None:
    """The manager schedules in the threads that submit, cancel and finish jobs (it has no
    thread of its own): given a slot, the next submission must run to completion."""
    manager.capacity["generate"] = 1  # zero until now: jobs only queued
    status, job = client.call("POST", "/api/dataset/generate", {
        "source": "uploads/news.jsonl", "name": "after-churn", **FIELDS})
    assert status == 202, job
    finished = wait_job(client, job["job_id"], timeout=120)
    assert finished["status"] == "completed", finished


def test_head_of_an_event_stream_gives_its_slot_back(server):
    client, _, base, _ = server
    status, job = client.call("POST", "/api/dataset/generate", {
        "source": "uploads/news.jsonl", "name": "watched", **FIELDS})
    assert status == 202
    for _ in range(6):  # more than the slots of 8 threads
        status, _, _ = raw_call(base, "HEAD", f"/api/jobs/{job['job_id']}/events", None)
        assert status == 200
    client.call("POST", f"/api/jobs/{job['job_id']}/cancel")
    request = urllib.request.Request(base + f"/api/jobs/{job['job_id']}/events")
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200


def _upload(base: str, name: str, content: bytes) -> tuple[int, dict]:
    boundary = "deepsynthboundary"
    data = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n").encode() \
        + content + f"\r\n--{boundary}--\r\n".encode()
    status, answer, _ = raw_call(base, "POST", "/api/uploads", data,
                                 f"multipart/form-data; boundary={boundary}")
    return status, answer


def test_uploads_never_write_through_a_symlink(server, tmp_path):
    _, _, base, root = server
    outside = tmp_path / "outside.jsonl"
    outside.write_text("precious\n")
    (root / "uploads" / "trap.jsonl").symlink_to(outside)
    status, answer = _upload(base, "trap.jsonl", b'{"article": "x"}\n')
    assert status == 400 and answer["field"] == "file", answer
    assert outside.read_text() == "precious\n"


def test_an_upload_replaces_a_file_atomically(server):
    _, _, base, root = server
    before = os.stat(root / "uploads" / "news.jsonl").st_ino
    status, answer = _upload(base, "news.jsonl", b'{"article": "new"}\n')
    assert status == 201, answer
    assert (root / "uploads" / "news.jsonl").read_bytes() == b'{"article": "new"}\n'
    assert os.stat(root / "uploads" / "news.jsonl").st_ino != before  # renamed into place
    assert not [p for p in (root / "uploads").iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("source", ["HF::/etc", "hf:/etc", "HF::../outside/secret",
                                    "hf:outside/secret"])
def test_hub_sources_never_name_local_folders(server, tmp_path, source, monkeypatch):
    client, _, _, _ = server
    secret = tmp_path / "outside" / "secret"
    secret.mkdir(parents=True)
    (secret / "train.jsonl").write_text(json.dumps({"article": "SECRET", "highlights": "x"}))
    monkeypatch.chdir(tmp_path)  # "outside/secret" exists relative to the server's cwd
    status, answer = client.call("POST", "/api/sources/preview", {"source": source})
    assert status == 400 and answer["field"] == "source", answer
    assert "SECRET" not in json.dumps(answer)


@pytest.mark.parametrize("next_url", ["/\\evil.example/x", "/%09/evil.example", "//evil.x",
                                      "https://evil.example", "/\t/evil.example"])
def test_login_never_redirects_off_the_site(tmp_path, next_url):
    token = "a-long-enough-token-for-tests"
    with running(ServerConfig(data_root=str(tmp_path / "data"), api_token=token)) as (_, base):
        with urllib.request.urlopen(base + "/login?next=" + urllib.parse.quote(next_url),
                                    timeout=30) as response:
            page = response.read().decode()
    assert 'data-next="/"' in page


def test_errors_show_no_absolute_server_path(server):
    client, _, _, root = server
    for path, body in [("/api/sources/preview", {"source": "uploads/missing.jsonl"}),
                       ("/api/model/train", {"dataset": "no-such-dataset"}),
                       ("/api/chat/validate", {"source": "uploads/missing.jsonl"})]:
        status, answer = client.call("POST", path, body)
        assert 400 <= status < 500, answer
        assert str(root) not in json.dumps(answer) and str(Path(root).resolve()) not in \
            json.dumps(answer), answer


def _login(base: str, token: str, cookie: str | None = None):
    request = urllib.request.Request(base + "/api/login", method="POST",
                                     data=json.dumps({"token": token}).encode())
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers)


def test_login_is_rate_limited_and_sessions_end(tmp_path, monkeypatch):
    from web_ui import auth

    token = "a-long-enough-token-for-tests"
    with running(ServerConfig(data_root=str(tmp_path / "data"), api_token=token)) as (_, base):
        statuses = [_login(base, "wrong")[0] for _ in range(auth.LOGIN_ATTEMPTS)]
        assert statuses == [401] * auth.LOGIN_ATTEMPTS
        status, headers = _login(base, token)  # even the right token waits now
        assert status == 429 and int(headers["Retry-After"]) >= 1
    with running(ServerConfig(data_root=str(tmp_path / "data"), api_token=token)) as (_, base):
        status, headers = _login(base, token)
        assert status == 200
        cookie = headers["Set-Cookie"].split(";")[0]
        assert "Max-Age" in headers["Set-Cookie"]

        def jobs(cookie_value):
            request = urllib.request.Request(base + "/api/jobs")
            request.add_header("Cookie", cookie_value)
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    return response.status
            except urllib.error.HTTPError as error:
                return error.code

        assert jobs(cookie) == 200
        request = urllib.request.Request(base + "/api/logout", method="POST", data=b"{}")
        request.add_header("Cookie", cookie)
        request.add_header("X-DeepSynth-CSRF", "1")
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200
        assert jobs(cookie) == 401  # the session ended with the logout
        monkeypatch.setattr(auth, "SESSION_SECONDS", -1)  # sessions made now are expired
        cookie = _login(base, token)[1]["Set-Cookie"].split(";")[0]
        assert jobs(cookie) == 401


def test_a_short_token_cannot_guard_a_public_address():
    from deepsynth.cli.serve_command import check_exposure
    from deepsynth.errors import ConfigError

    with pytest.raises(ConfigError, match="too short"):
        check_exposure(ServerConfig(host="0.0.0.0", api_token="x"), {})
    check_exposure(ServerConfig(host="0.0.0.0", api_token="x" * 16), {})
    check_exposure(ServerConfig(host="127.0.0.1", api_token="x"), {})


def test_a_full_disk_fails_the_job_and_keeps_the_service(tmp_path):
    """A 4 MiB tmpfs as the data root (mounted when the tests run as root; skipped, and says
    so, otherwise): generation runs out of space, the job ends failed with the reason, the
    service answers, and the job can be deleted."""
    import subprocess

    root = tmp_path / "small"
    root.mkdir()
    mounted = os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(root)],
        capture_output=True, check=False).returncode == 0
    if not mounted:
        pytest.skip("mounting a tmpfs needs root and mount(8): the disk-full case is not run")
    try:
        uploads = root / "uploads"
        uploads.mkdir()
        words = " ".join(f"word{i}" for i in range(400))
        (uploads / "big.jsonl").write_text("".join(
            json.dumps({"article": f"{i} {words}", "highlights": f"s{i}", "id": str(i)}) + "\n"
            for i in range(400)))
        with running(ServerConfig(data_root=str(root), threads=8)) as (app, base):
            client = Client(base)
            status, made = client.call("POST", "/api/dataset/generate", {
                "source": "uploads/big.jsonl", "name": "big", "workers": 1,
                "text_field": "article", "summary_field": "highlights", "id_field": "id",
                "shard_size": 20, "png_level": 0})
            assert status == 202, made
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:
                status, job = client.call("GET", f"/api/jobs/{made['job_id']}")
                if job["status"] not in ("queued", "running"):
                    break
                time.sleep(0.5)
            assert job["status"] == "failed", job
            assert "space" in job["error"].lower(), job["error"]
            assert str(root) not in job["error"]
            assert_healthy(client)
            assert client.call("DELETE", f"/api/jobs/{made['job_id']}")[0] == 200
    finally:
        for _ in range(3):  # forking from this many-threaded process can fail once
            try:
                subprocess.run(["umount", "-l", str(root)], check=False)
                break
            except (OSError, subprocess.SubprocessError):
                time.sleep(0.5)


def test_one_bad_file_never_breaks_a_listing(server):
    """A garbage manifest, a corrupt metrics.json, a corrupt trainer_state.json and a
    checkpoint folder with a junk name: each is reported or left out, never a 500."""
    client, _, _, root = server
    for name, text in (("good", None), ("garbage", "{not json"), ("wrong", '{"a": 1}')):
        folder = root / "datasets" / name
        folder.mkdir(parents=True)
        if text is not None:
            (folder / "deepsynth-manifest.json").write_text(text)
    status, listing = client.call("GET", "/api/datasets")
    assert status == 200, listing
    shown = {d["name"]: d["status"] for d in listing["datasets"]}
    assert shown == {"garbage": "unreadable", "wrong": "unreadable"}
    status, one = client.call("GET", "/api/datasets/garbage")
    assert status == 200 and one["status"] == "unreadable" and one["error"], one
    run = root / "models" / "run"
    (run / "checkpoints" / "step-junk").mkdir(parents=True)
    (run / "checkpoints" / "step-000002").mkdir()
    (run / "checkpoints" / "step-000002" / "trainer_state.json").write_text("{trunc")
    (run / "metrics.json").write_text("[1, 2")
    status, models = client.call("GET", "/api/models")
    assert status == 200 and models["models"][0]["metrics"] == {}, models
    status, saved = client.call("GET", "/api/training/checkpoints?model=run")
    assert status == 200 and saved["checkpoints"] == [], saved


def test_deleting_a_symlinked_dataset_removes_only_the_link(server, tmp_path):
    client, _, _, root = server
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "deepsynth-manifest.json").write_text("{}")
    (root / "datasets").mkdir(exist_ok=True)
    (root / "datasets" / "linked").symlink_to(elsewhere)
    status, answer = client.call("DELETE", "/api/datasets/linked")
    assert status == 200, answer
    assert not (root / "datasets" / "linked").exists()
    assert (elsewhere / "deepsynth-manifest.json").exists()


@pytest.mark.parametrize("font", ["/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
                                  "../outside.ttf", "uploads/missing.ttf", "NoSuchFont"])
def test_fonts_are_bundled_names_or_files_under_the_data_root(server, font):
    client, _, _, _ = server
    for path, body in (("/api/dataset/generate", {"source": "uploads/news.jsonl",
                                                  "name": "f", "font": font}),
                       ("/api/render/preview", {"text": "hello", "font": font})):
        status, answer = client.call("POST", path, body)
        assert status in (400, 404) and answer.get("field", "font") == "font", answer
        assert "exist" not in answer["error"]  # says nothing of the server's files


def test_a_font_file_under_the_data_root_is_used(server):
    from deepsynth.render.fonts import bundled_font_path

    client, _, _, root = server
    (root / "uploads" / "mine.ttf").write_bytes(bundled_font_path("DejaVuSerif").read_bytes())
    status, answer = client.call("POST", "/api/render/preview",
                                 {"text": "hello", "font": "uploads/mine.ttf"})
    assert status == 200 and answer["pages"], answer


@pytest.mark.parametrize("name", [[], {}, False, ""])
@pytest.mark.parametrize("path", ["/api/model/train", "/api/benchmark/create"])
def test_a_wrong_name_is_refused_never_replaced(server, path, name):
    client, _, _, _ = server
    body = {"dataset": "uploads/news.jsonl", "trainer_type": "generic"} \
        if path == "/api/model/train" else {"preset": "scitldr"}
    status, answer = client.call("POST", path, {**body, "name": name})
    assert status == 400 and answer["field"] == "name", answer


@pytest.mark.parametrize("path", ["/api/dataset/generate", "/api/benchmark/create"])
def test_a_dataset_cannot_take_a_name_the_api_reserves(server, path):
    """GET /api/datasets/presets lists the presets: a dataset of that name could never be
    read or deleted through the API, so it is refused at submit."""
    client, _, _, _ = server
    body = {"source": "uploads/news.jsonl"} if path == "/api/dataset/generate" \
        else {"preset": "scitldr"}
    status, answer = client.call("POST", path, {**body, "name": "presets"})
    assert status == 422 and answer["field"] == "name" and "reserved" in answer["error"], answer
    assert not (server[3] / "datasets" / "presets").exists()


def test_a_damaged_job_json_of_a_running_job_is_rebuilt_not_replaced(tmp_path):
    """The process running a job holds its record: a job.json cut short meanwhile is written
    back from memory at the next update, never over with a placeholder; a job nobody runs
    reads as corrupt and is never written over."""
    from deepsynth.jobs.state import InvalidTransition, JobRecord, JobStore

    store = JobStore(tmp_path / "jobs")
    config = {"name": "x", "options": {"source": "uploads/a.jsonl", "font_size": 14}}
    for job_id in ("generate-held", "generate-idle"):
        store.save(JobRecord(job_id, "generate", status="running", name="x", config=config))
    store.hold("generate-held")
    for job_id in ("generate-held", "generate-idle"):
        path = tmp_path / "jobs" / job_id / "job.json"
        path.write_text(path.read_text()[:40])
    assert store.load("generate-held").config == config
    store.update("generate-held", progress={"current": 3})
    rebuilt = json.loads((tmp_path / "jobs" / "generate-held" / "job.json").read_text())
    assert rebuilt["config"] == config and rebuilt["status"] == "running"
    assert store.load("generate-idle").status == "corrupt"
    with pytest.raises(InvalidTransition, match="corrupt"):
        store.update("generate-idle", progress={"current": 1})
    assert len((tmp_path / "jobs" / "generate-idle" / "job.json").read_text()) == 40
