"""What the API, lifecycle and UI tests share: a real waitress server in a thread, a JSON
client, waiting for a job, and a test double of the Hub client."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from deepsynth.config.server import ServerConfig
from web_ui import create_app
from web_ui.serving import make_server

TOKEN = "test-api-token-xyz"


class Client:
    def __init__(self, base: str, token: str | None = None):
        self.base, self.token = base, token

    def call(self, method: str, path: str, body=None, token: str | None = None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if token or self.token:
            request.add_header("Authorization", f"Bearer {token or self.token}")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")


@contextlib.contextmanager
def running(config: ServerConfig, manager=None):
    """A real waitress server on a free port, in a thread, made as ``deepsynth serve``
    makes it (its body cap, its JSON errors); stopped with its jobs after."""
    app = create_app(config, manager=manager)
    server = make_server(app, config, "127.0.0.1", 0)

    def serve_until_closed():
        try:
            server.run()
        except (OSError, ValueError):  # the test closed the sockets under the running loop
            pass

    threading.Thread(target=serve_until_closed, daemon=True).start()
    try:
        yield app, f"http://127.0.0.1:{server.effective_port}"
    finally:
        app.config["JOBS"].shutdown(30)
        server.close()


def wait_job(client: Client, job_id: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, job = client.call("GET", f"/api/jobs/{job_id}")
        assert status == 200
        if job["status"] in ("completed", "failed", "cancelled", "paused"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


class HubDouble:
    """TEST DOUBLE of the Hub client (the Hub is unreachable here): records what it gets and
    keeps uploaded files in memory, so downloading a repository returns what was uploaded."""

    instances: list = []
    repositories: dict = {}

    def __init__(self, token, repo_type):
        self.token, self.repo_type = token, repo_type
        self.created, self.uploaded = [], []
        HubDouble.instances.append(self)

    def create_repo(self, repo_id, *, private):
        self.created.append((repo_id, private))

    def upload_file(self, local_path, path_in_repo, repo_id):
        self.uploaded.append(path_in_repo)
        files = HubDouble.repositories.setdefault((self.repo_type, repo_id), {})
        files[path_in_repo] = Path(local_path).read_bytes()

    def list_files(self, repo_id):
        return []

    def download(self, repo_id, local_dir):
        for name, data in HubDouble.repositories[(self.repo_type, repo_id)].items():
            (Path(local_dir) / name).parent.mkdir(parents=True, exist_ok=True)
            (Path(local_dir) / name).write_bytes(data)
        return Path(local_dir)
