"""Container smoke test: Dockerfile.cpu built and run by a real engine (podman).

Built from a copy of the build context in which only the FROM line changes (a local Debian
bookworm base made with debootstrap: registries are unreachable here; the pip installs of the
Dockerfile read a wheelhouse, see tests/support/containers.py), the image is run as the docs
say (a named volume at /data, the port published on loopback, a token), and then: health
answers 200, and the image's own HEALTHCHECK passes under podman; a dataset is generated
through the API; SIGTERM stops the container with the job interrupted (resumable) and the
files on the volume belong to uid 1000; a restart (--auto-resume, the image's command)
finishes the job. The compose files go through the compose tool when one is installed.

Skipped, with the reason in the `-rs` summary, where no engine can run. The cold path (no base
image, no wheelhouse, no layer cache: about 8 minutes on 2 busy cores) is bounded: when making
the base image, the wheelhouse and the image takes longer than COLD_LIMIT_S
(DEEPSYNTH_CONTAINER_COLD_LIMIT_S, default 600), the test is skipped saying so.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from conftest import articles, write_jsonl

from tests.support import containers

COLD_LIMIT_S = float(os.environ.get("DEEPSYNTH_CONTAINER_COLD_LIMIT_S", "600"))
TOKEN = "smoke-test-token-" + "x" * 16
TIMINGS: dict[str, float] = {}
WHERE = ("import deepsynth, web_ui, site; "
         "print(deepsynth.__file__, web_ui.__file__, *site.getsitepackages())")


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    """(podman, flags): IMAGE built from the working tree; skipped, saying why, when not."""
    deadline = time.monotonic() + COLD_LIMIT_S
    try:
        podman = containers.engine()
        TIMINGS["base image"] = containers.base_image(podman, deadline)
        flags = containers.run_flags(podman)
        requirements = subprocess.run(
            [sys.executable, str(containers.REPO / "scripts" / "pyproject_deps.py")],
            capture_output=True, text=True, check=True).stdout.split()
        torch = next(line.split("=", 1)[1] for line in
                     (containers.REPO / "Dockerfile.cpu").read_text().splitlines()
                     if line.startswith("ARG TORCH_VERSION="))
        began = time.monotonic()
        wheels = containers.wheelhouse(requirements, torch, deadline)
        TIMINGS["wheelhouse"] = time.monotonic() - began
        context = containers.build_context(tmp_path_factory.mktemp("build") / "context")
        TIMINGS["build"] = containers.build(podman, flags, context, wheels,
                                            containers.left(deadline))
    except subprocess.TimeoutExpired as exc:
        pytest.skip(f"the cold image build exceeded {COLD_LIMIT_S / 60:.0f} min "
                    f"(DEEPSYNTH_CONTAINER_COLD_LIMIT_S) in {Path(exc.cmd[0]).name} "
                    f"{exc.cmd[1]}; done so far (s): {json.dumps(TIMINGS)}")
    except containers.Unavailable as exc:
        pytest.skip(str(exc))
    print(f"\ncontainer smoke timings (s): {json.dumps(TIMINGS)}", file=sys.stderr)
    return podman, flags


def free_port() -> int:
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def request(port: int, method: str, path: str, body: dict | None = None):
    data = None if body is None else json.dumps(body).encode()
    call = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                  headers={"Content-Type": "application/json",
                                           "Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(call, timeout=30) as response:
        return response.status, json.loads(response.read() or b"null")


def wait_until(check, what: str, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = check()
        except (OSError, urllib.error.URLError, ValueError):
            found = None
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def healthy(port: int) -> bool:
    status, body = request(port, "GET", "/api/health")
    return status == 200 and body["role"] == "cpu"


def finished(port: int, job_id: str) -> dict | None:
    view = request(port, "GET", f"/api/jobs/{job_id}")[1]
    return None if view["status"] in ("queued", "running", "pausing") else view


class Container:
    """One container of IMAGE and its named volume; both removed at the end."""

    def __init__(self, podman: str, flags: list[str]):
        self.podman, self.flags = podman, flags
        suffix = uuid.uuid4().hex[:8]
        self.name, self.volume = f"deepsynth-smoke-{suffix}", f"deepsynth-smoke-{suffix}"
        self.port = free_port()

    def engine(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return containers.run([self.podman, *args], timeout)

    def start(self) -> None:
        """The docs' `docker run` line: named volume, loopback publishing, a token."""
        created = self.engine(
            "run", "-d", *self.flags, "--name", self.name, "-p", f"127.0.0.1:{self.port}:5000",
            "-v", f"{self.volume}:/data", "-e", f"DEEPSYNTH_API_TOKEN={TOKEN}",
            "-e", "OMP_NUM_THREADS=1", containers.IMAGE)
        assert created.returncode == 0, created.stderr

    def mountpoint(self) -> Path:
        found = self.engine("volume", "inspect", self.volume, "--format", "{{.Mountpoint}}")
        assert found.returncode == 0, found.stderr
        return Path(found.stdout.strip())

    def logs(self) -> str:
        return self.engine("logs", self.name).stderr[-3000:]

    def remove(self) -> None:
        self.engine("rm", "-f", "-t", "0", self.name)
        self.engine("volume", "rm", "-f", self.volume)


def test_cpu_image_serves_generates_and_resumes_after_sigterm(image):
    container = Container(*image)
    try:
        container.start()
        wait_until(lambda: healthy(container.port), "health 200", 180)
        check = container.engine("healthcheck", "run", container.name)
        assert check.returncode == 0, check.stdout + check.stderr  # the image's HEALTHCHECK
        volume = container.mountpoint()
        # The corpus goes into the volume as the service's user would have put it there.
        corpus = write_jsonl(volume / "uploads" / "big.jsonl", articles(1500, words=40))
        for path in (corpus.parent, corpus):
            os.chown(path, 1000, 1000)
        status, job = request(container.port, "POST", "/api/dataset/generate", {
            "source": "uploads/big.jsonl", "text_field": "article",
            "summary_field": "highlights", "id_field": "id", "name": "big",
            "page_size": "tiny", "workers": 1, "shard_size": 5})
        assert status == 202, job
        manifest = volume / "datasets" / "big" / "deepsynth-manifest.json"
        wait_until(lambda: json.loads(manifest.read_text())["splits"]["train"]["shards"],
                   "a first shard", 120)

        stopped = container.engine("stop", "-t", "90", container.name, timeout=120)
        assert stopped.returncode == 0, stopped.stderr       # SIGTERM, then the grace time
        state = container.engine("inspect", container.name, "--format",
                                 "{{.State.ExitCode}}").stdout.strip()
        assert state == "0", container.logs()                # it exited itself, cleanly
        on_disk = json.loads((volume / "jobs" / job["job_id"] / "job.json").read_text())
        assert on_disk["status"] == "interrupted", on_disk
        written = json.loads(manifest.read_text())["splits"]["train"]
        assert written["shards"] and written["status"] != "complete"
        owners = {(p.stat().st_uid, p.stat().st_gid) for p in volume.rglob("*")}
        assert owners == {(1000, 1000)}, owners

        started = container.engine("start", container.name)
        assert started.returncode == 0, started.stderr
        wait_until(lambda: healthy(container.port), "health after the restart", 180)
        view = wait_until(lambda: finished(container.port, job["job_id"]),
                          "the resumed job to finish", 300)
        assert view["status"] == "completed", (view["error"], container.logs())
        counts = json.loads(manifest.read_text())["splits"]["train"]["counts"]
        assert counts["written"] == 1500
    finally:
        container.remove()


def test_cpu_image_holds_one_copy_of_the_source_and_refuses_clearly(image, tmp_path):
    """The source lives in /app only (installed in place); `docker run IMAGE` alone, and a
    bind-mounted folder the image's uid cannot write, end in one line, not a traceback."""
    podman, flags = image
    where = containers.run([podman, "run", "--rm", *flags, "--entrypoint", "python",
                            containers.IMAGE, "-c", WHERE], 120)
    assert where.returncode == 0, where.stderr
    package, ui, *site_packages = where.stdout.split()
    assert package == "/app/src/deepsynth/__init__.py" and ui == "/app/web_ui/__init__.py"
    for folder in site_packages:
        listed = containers.run([podman, "run", "--rm", *flags, "--entrypoint", "ls",
                                 containers.IMAGE, folder], 60).stdout.split()
        assert "deepsynth" not in listed and "web_ui" not in listed, folder
    alone = containers.run([podman, "run", "--rm", *flags, containers.IMAGE], 120)
    assert alone.returncode == 2 and "DEEPSYNTH_API_TOKEN" in alone.stderr, alone.stderr
    host_folder = tmp_path / "host-data"
    host_folder.mkdir(mode=0o755)            # root's: uid 1000 cannot write it
    refused = containers.run([podman, "run", "--rm", *flags, "-e", f"DEEPSYNTH_API_TOKEN={TOKEN}",
                              "-v", f"{host_folder}:/data", containers.IMAGE], 120)
    assert refused.returncode == 2, refused.stderr
    assert "Traceback" not in refused.stderr
    assert "/data is not writable by this process, uid 1000" in refused.stderr
    assert "chown -R 1000:1000" in refused.stderr


def compose_tool() -> list[str] | None:
    """podman-compose from this environment (the dev extra), else docker compose, else the
    system's podman-compose."""
    import importlib.util
    if importlib.util.find_spec("podman_compose"):
        return [sys.executable, "-m", "podman_compose"]
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"],
                                                 capture_output=True, check=False).returncode == 0:
        return ["docker", "compose"]
    return [shutil.which("podman-compose")] if shutil.which("podman-compose") else None


@pytest.mark.parametrize("name", ["docker-compose.cpu.yml", "docker-compose.gpu.yml",
                                  "docker-compose.yml"])
def test_compose_tool_accepts_each_compose_file(name):
    tool = compose_tool()
    if tool is None:
        pytest.skip("no compose tool installed (podman-compose or docker compose)")
    result = subprocess.run([*tool, "-f", name, "config"], cwd=containers.REPO,
                            capture_output=True, text=True, timeout=120, check=False)
    if "invalid choice: 'config'" in result.stderr:
        pytest.skip(f"{tool[-1]} has no `config` command (podman-compose 1.0; the dev extra "
                    "installs a newer one)")
    assert result.returncode == 0, result.stdout + result.stderr
    model = result.stdout
    assert "name: deepsynth-data" in model
    roles = ["cpu", "gpu"] if name == "docker-compose.yml" else [name.split(".")[1]]
    for role in roles:      # each service, its image and its healthcheck on its own port
        assert f"  {role}:\n" in model and f"image: deepsynth-{role}:0.1.0" in model
        port = 5000 if role == "cpu" else 5001
        assert f"http://127.0.0.1:{port}/api/health" in model
