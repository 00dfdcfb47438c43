"""A real Ray cluster of two nodes (1 CPU each) on this machine, and a generation driven on it.

Run by tests/test_ray_engine.py inside a network namespace holding only ``lo`` (so Ray binds
127.0.0.1 and no traffic leaves loopback):

    python tests/support/ray_cluster.py SCENARIO MANIFEST -- deepsynth generate ARGS...

It starts ``ray.cluster_utils.Cluster`` (a head and a second node, separate raylets), runs
``python -m deepsynth generate ARGS --ray-address ADDRESS`` as a subprocess (the driver),
and acts on SCENARIO:

    plain        wait for the driver
    remove-node  remove the second node once the manifest records a shard
    kill-driver  SIGKILL the driver once the manifest records a shard, then run it again
    no-cpus      the head has 0 CPUs and there is no second node
    serve        no driver: print the address, keep the cluster until stdin closes (the
                 test runs its driver in another mount namespace)
    service      the driver is ``deepsynth serve --role cpu --data-root ROOT --ray-address
                 ADDRESS`` (ARGS: ROOT and a JSON generation request); the request is sent
                 to POST /api/dataset/generate and the job polled until it ends

It prints one JSON line: each driver run's return code and stderr, and what it did.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ray.cluster_utils import Cluster

NODE = {"num_cpus": 1, "object_store_memory": 80 * 2**20}
WAIT_SECONDS = 150


def recorded_shards(manifest: Path) -> int:
    try:
        state = json.loads(manifest.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return 0
    return sum(len(s["shards"]) for s in state["splits"].values())


def wait_for_shard(manifest: Path, process: subprocess.Popen) -> int:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the driver ended before a shard was recorded: "
                             f"{process.stderr.read()[-2000:]}")
        shards = recorded_shards(manifest)
        if shards:
            return shards
        time.sleep(0.01)
    raise SystemExit("no shard recorded in time")


def driver(command: list[str], address: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "deepsynth", *command, "--ray-address",
                             address], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def finish(process: subprocess.Popen) -> dict:
    out, err = process.communicate(timeout=WAIT_SECONDS)
    return {"returncode": process.returncode, "stdout": out[-3000:], "stderr": err[-3000:]}


def call(port: int, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, json.dumps(body) if body is not None else None,
                           {"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def through_the_service(root: Path, request: dict, address: str) -> dict:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "deepsynth", "serve", "--role", "cpu",
                               "--port", str(port), "--data-root", str(root),
                               "--ray-address", address],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            try:
                call(port, "GET", "/api/health")
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the service did not start: {server.stderr.read()}")
                time.sleep(0.2)
        status, accepted = call(port, "POST", "/api/dataset/generate", request)
        if status != 202:
            return {"http_status": status, **accepted}
        while time.monotonic() < deadline:
            _, job = call(port, "GET", f"/api/jobs/{accepted['job_id']}")
            if job["status"] in ("completed", "failed", "cancelled", "interrupted"):
                return job
            time.sleep(0.5)
        raise SystemExit("the job did not end in time")
    finally:
        server.terminate()
        server.wait(timeout=60)


def main() -> None:
    scenario, manifest = sys.argv[1], Path(sys.argv[2])
    command = sys.argv[sys.argv.index("--") + 1:]
    # Short: Ray's Unix sockets live under it, and their paths are limited to 107 bytes.
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    os.environ["RAY_TMPDIR"] = temp  # Ray's files (and its address file) there, not /tmp/ray
    head = {**NODE, "num_cpus": 0} if scenario == "no-cpus" else NODE
    cluster = Cluster(initialize_head=True, head_node_args=head)
    second = None if scenario == "no-cpus" else cluster.add_node(**NODE)
    cluster.wait_for_nodes()
    report = {"address": cluster.address, "runs": []}
    if scenario == "service":
        try:
            report["job"] = through_the_service(Path(command[0]), json.loads(command[1]),
                                                cluster.address)
        finally:
            cluster.shutdown()
            shutil.rmtree(temp, ignore_errors=True)
        print(json.dumps(report))
        return
    if scenario == "serve":
        print(json.dumps(report), flush=True)
        sys.stdin.read()
        cluster.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
        return
    try:
        process = driver(command, cluster.address)
        if scenario == "remove-node":
            report["shards_before"] = wait_for_shard(manifest, process)
            cluster.remove_node(second, allow_graceful=False)
        elif scenario == "kill-driver":
            report["shards_before"] = wait_for_shard(manifest, process)
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            report["runs"].append({"returncode": process.returncode})
            report["shards_after_kill"] = recorded_shards(manifest)
            process = driver(command, cluster.address)
        report["runs"].append(finish(process))
    finally:
        cluster.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
