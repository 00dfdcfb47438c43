"""The Ray engine: pages/s on 1 node vs 2 nodes of 1 CPU, Ray vs the local pool at 2 CPUs,
and the driver's peak memory at 5,000 vs 500 documents.

    .venv/bin/python benchmarks/bench_ray.py [--docs 1000] [--shard-size 25]
        [--small 500] [--large 5000]

Needs root: like tests/test_ray_engine.py it runs inside a network namespace it creates
holding only ``lo`` (Ray binds 127.0.0.1 there; no traffic leaves loopback), re-running
itself there with ``--inside``. A ``ray.cluster_utils.Cluster`` head of 1 CPU is started;
the real CLI (``deepsynth generate --engine ray --ray-address ...``) renders ``--docs``
documents of the benchmark corpus (``corpus.py``, 1024x1024 pages) on it; a second node of
1 CPU is added and the same corpus rendered again; then the local engine with
``--workers 2``. Rates are pages over the span the manifest records (created to last
update: the rendering, without starting Ray or the pool); the wall time of each command is
printed too. Last, the driver (the CLI process; Ray's workers are the raylets' children,
not the driver's) is sampled every 20 ms on ``--small`` and ``--large`` documents with the
default shard size, on the two nodes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from corpus import write_corpus

NODE = {"num_cpus": 1, "object_store_memory": 200 * 2**20}


def generate(corpus: Path, out: Path, *extra: str) -> dict:
    command = [sys.executable, "-m", "deepsynth", "generate", "--source", str(corpus),
               "--out", str(out), "--text-field", "article", "--summary-field", "highlights",
               "--id-field", "id", *extra]
    start = time.monotonic()
    process = psutil.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while process.poll() is None:
        try:
            peak = max(peak, process.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.02)
    if process.returncode != 0:
        raise SystemExit(f"generate failed: {process.stderr.read().decode()[-2000:]}")
    manifest = json.loads((out / "deepsynth-manifest.json").read_text())
    span = manifest["updated_at"] - manifest["created_at"]
    pages = manifest["totals"]["pages"]
    return {"pages": pages, "seconds": round(span, 2),
            "pages_per_s": round(pages / span, 1),
            "wall_seconds": round(time.monotonic() - start, 2),
            "driver_peak_rss_mib": round(peak / 2**20, 1)}


def inside(args: argparse.Namespace) -> dict:
    from ray.cluster_utils import Cluster

    work = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    os.environ["RAY_TMPDIR"] = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    corpus = write_corpus(work / "corpus.jsonl", args.docs)
    cluster = Cluster(initialize_head=True, head_node_args=NODE)
    try:
        cluster.wait_for_nodes()
        ray = ["--engine", "ray", "--ray-address", cluster.address,
               "--shard-size", str(args.shard_size)]
        one = generate(corpus, work / "one", *ray)
        cluster.add_node(**NODE)
        cluster.wait_for_nodes()
        two = generate(corpus, work / "two", *ray)
        local = generate(corpus, work / "local", "--workers", "2",
                         "--shard-size", str(args.shard_size))
        memory = {}
        for size in (args.small, args.large):
            path = write_corpus(work / f"corpus-{size}.jsonl", size)
            memory[size] = generate(path, work / f"mem-{size}", "--engine", "ray",
                                    "--ray-address", cluster.address)
    finally:
        cluster.shutdown()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(os.environ["RAY_TMPDIR"], ignore_errors=True)
    return {
        "docs": args.docs, "shard_size": args.shard_size,
        "ray_1_node": one, "ray_2_nodes": two, "local_2_workers": local,
        "scaling_2_vs_1_node": round(two["pages_per_s"] / one["pages_per_s"], 2),
        "ray_vs_local_at_2_cpus": round(two["pages_per_s"] / local["pages_per_s"], 2),
        "driver_memory": {str(k): v for k, v in memory.items()},
        "driver_peak_ratio": round(memory[args.large]["driver_peak_rss_mib"]
                                   / memory[args.small]["driver_peak_rss_mib"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--shard-size", type=int, default=25)
    parser.add_argument("--small", type=int, default=500)
    parser.add_argument("--large", type=int, default=5000)
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside:
        print(json.dumps(inside(args), indent=2))
        return
    name = f"bench-ray-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"],
                       check=True)
        subprocess.run(["ip", "netns", "exec", name, sys.executable, *sys.argv, "--inside"],
                       check=True)
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


if __name__ == "__main__":
    main()
