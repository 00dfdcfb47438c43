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
from support.server import Client, running

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


def test_listing_under_concurrent_submit_and_delete(server):
    """8 threads submit, delete and list for a bounded time: no listing fails."""
    client, app, _, _ = server
    failures, listings, stop = [], [0], time.monotonic() + 10

    def churn(worker: int):
        count = 0
        while time.monotonic() < stop:
            if worker % 2:
                status, answer = client.call("GET", "/api/jobs")
                listings[0] += 1
                if status != 200:
                    failures.append((status, answer))
                continue
            count += 1
            status, answer = client.call("POST", "/api/dataset/generate", {
                "source": "uploads/news.jsonl", "name": f"c{worker}-{count}"})
            if status == 202:
                client.call("POST", f"/api/jobs/{answer['job_id']}/cancel")
                client.call("DELETE", f"/api/jobs/{answer['job_id']}")
            elif status >= 500:
                failures.append((status, answer))

    threads = [threading.Thread(target=churn, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures, failures[:3]
    assert listings[0] > 20
    assert_healthy(client)
    assert app.config["JOBS"]._heartbeat.is_alive()


def test_head_of_an_event_stream_gives_its_slot_back(server):
    client, _, base, _ = server
    status, job = client.call("POST", "/api/dataset/generate", {
        "source": "uploads/news.jsonl", "name": "watched"})
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
