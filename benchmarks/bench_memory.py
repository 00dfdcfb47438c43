"""Peak memory of `deepsynth generate` as the corpus grows (it should stay flat).

    .venv/bin/python benchmarks/bench_memory.py [--small 500] [--large 5000] [--workers 2]

Runs the real CLI on synthetic corpora of two sizes with the default shard size and samples
the resident memory of the main process and every child (workers, fork server) every 20 ms.
Prints the peak of the largest single process and the peak of the sum, and their ratios.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from corpus import write_corpus


def peak_memory(corpus: Path, out: Path, workers: int) -> dict:
    command = [sys.executable, "-m", "deepsynth", "generate", "--source", str(corpus),
               "--out", str(out), "--text-field", "article", "--summary-field", "highlights",
               "--id-field", "id", "--workers", str(workers)]
    process = psutil.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    largest = total = 0
    start = time.monotonic()
    while process.poll() is None:
        try:
            tree = [process, *process.children(recursive=True)]
            sizes = [p.memory_info().rss for p in tree]
        except psutil.NoSuchProcess:
            continue
        largest, total = max(largest, max(sizes)), max(total, sum(sizes))
        time.sleep(0.02)
    if process.returncode != 0:
        raise SystemExit(f"generate failed with exit code {process.returncode}")
    return {"seconds": round(time.monotonic() - start, 1),
            "peak_largest_process_mib": round(largest / 2**20, 1),
            "peak_sum_mib": round(total / 2**20, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=500)
    parser.add_argument("--large", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    report: dict = {"workers": args.workers}
    with tempfile.TemporaryDirectory() as tmp:
        for label, documents in (("small", args.small), ("large", args.large)):
            corpus = write_corpus(Path(tmp) / f"{label}.jsonl", documents)
            report[f"{documents}_documents"] = peak_memory(corpus, Path(tmp) / label,
                                                           args.workers)
    small, large = report[f"{args.small}_documents"], report[f"{args.large}_documents"]
    report["ratio_largest_process"] = round(
        large["peak_largest_process_mib"] / small["peak_largest_process_mib"], 3)
    report["ratio_sum"] = round(large["peak_sum_mib"] / small["peak_sum_mib"], 3)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
