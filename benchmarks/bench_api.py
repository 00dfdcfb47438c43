"""REST API: listing jobs with 1,000 on disk, and polling clients during a training job.

    .venv/bin/python benchmarks/bench_api.py [--jobs 1000] [--requests 200]
        [--clients 20] [--poll-seconds 30] [--rounds 3] [--max-steps 5000]
        [--no-poll-metrics] [--skip-list] [--skip-polling]

Both parts run the real ``deepsynth serve`` in a subprocess on a free port, over a fresh data
root, and talk HTTP/1.1 to it with keep-alive connections (``http.client``).

1. Listing: ``--jobs`` finished job records (generation, training and evaluation jobs with
   the configs, progress and results real jobs have; 85 % completed) are written with
   ``JobStore``, the server starts on them, and ``GET /api/jobs`` (default page: 100 jobs)
   is timed ``--requests`` times in a row, after one cold request and five warm-up ones.
2. Polling: a 32-document SciTLDR dataset at 256x256 is generated through the API, then one
   ``cpu_demo`` training job (the tiny model) runs through ``2 x --rounds + 1`` windows of
   ``--poll-seconds``, alternating: without pollers, with them, ..., without (machine noise
   hits both kinds alike, and job start-up is out of the comparison). In a polled
   window one separate process, started before the first window and idle in between, runs
   ``--clients`` threads that each GET ``/api/jobs/<id>`` and ``/api/metrics/<id>`` once a
   second. Windows start after the job's 5th step (model loading excluded). The step rate of
   a window comes from the job's progress writes (``job.json`` holds the step and the time it
   was written, at most every 0.5 s), read from disk, so measuring adds no requests.
   Evaluation and checkpoints are moved to the last step, out of the windows, and the job is
   cancelled after the last window. Prints every window's rate, the medians of each kind, the
   ratio polled/baseline, each polled window's ratio to the mean of the two baseline windows
   around it (and their median), the pollers' requests, errors and latencies, and the CPU
   (in cores) that the server process and the polling process used in each window.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import multiprocessing
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from deepsynth.jobs.state import JobRecord, JobStore

WARMUP_STEPS = 5
GAP_SECONDS = 2.0  # between windows, so that a polled window's last requests end
FINAL = ("completed", "failed", "cancelled", "paused", "interrupted")


def log(message: str) -> None:
    print(f"[bench_api {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def milliseconds(values: list[float]) -> dict:
    return {"p50_ms": round(percentile(values, 50) * 1000, 2),
            "p95_ms": round(percentile(values, 95) * 1000, 2),
            "max_ms": round(max(values) * 1000, 2),
            "mean_ms": round(statistics.mean(values) * 1000, 2)}


class Api:
    """One keep-alive HTTP/1.1 connection to the server. The server closes connections idle
    for two minutes, so one idle for ``fresh_after`` seconds is replaced before it is used."""

    def __init__(self, port: int, timeout: float = 60, fresh_after: float | None = None):
        self.port, self.timeout, self.fresh_after = port, timeout, fresh_after
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        self.used = time.monotonic()

    def reconnect(self) -> None:
        self.connection.close()
        self.connection = http.client.HTTPConnection("127.0.0.1", self.port,
                                                     timeout=self.timeout)

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        if self.fresh_after is not None and time.monotonic() - self.used > self.fresh_after:
            self.reconnect()
        self.used = time.monotonic()
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        try:
            self.connection.request(method, path, body=data, headers=headers)
            response = self.connection.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):
            self.reconnect()  # for the next call
            raise

    def json(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        status, raw = self.call(method, path, body)
        return status, json.loads(raw or b"null")


@contextlib.contextmanager
def serve(root: Path):
    """``deepsynth serve`` on a free port over ``root``; stopped with SIGTERM after."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "DEEPSYNTH_API_TOKEN"}
    with open(root / "serve.log", "wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "deepsynth", "serve", "--data-root", str(root / "data"),
             "--port", str(port)], stdout=output, stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if Api(port, timeout=5).call("GET", "/api/health")[0] == 200:
                        break
                except OSError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the server did not start; see {root / 'serve.log'}")
                time.sleep(0.1)
            yield port, process.pid
        finally:
            process.terminate()
            try:
                process.wait(90)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# Part 1: GET /api/jobs with many jobs on disk.

def _generate_record(rng: random.Random, status: str) -> dict:
    name = f"{rng.choice(['scitldr', 'xsum', 'cnn', 'arxiv', 'news'])}-{rng.randint(1, 999)}"
    rows = rng.choice([500, 1000, 2000, 5000])
    options = {"source": rng.choice(["preset:scitldr", "preset:xsum", "uploads/news.jsonl"]),
               "max_samples": rows, "page_size": rng.choice(["base", "256x256", "large"]),
               "font_size": rng.choice([12, 14, 18]), "margin": 40, "workers": 2,
               "validation_fraction": 0.1, "dedup": True}
    done = rows if status == "completed" else rng.randint(0, rows)
    return {"kind": "generate", "name": name, "config": {"name": name, "options": options},
            "progress": {"stage": "train", "current": done, "total": rows,
                         "rate": round(rng.uniform(150, 400), 3), "eta_s": 0.0},
            "result": {"status": "completed", "dataset": name,
                       "rows": {"train": int(rows * 0.9), "validation": rows // 10},
                       "counts": {"read": rows, "written": rows - 3, "skipped_empty": 1,
                                  "skipped_duplicate": 2, "pages": rows + rng.randint(0, 99)},
                       "hub_error": None} if status == "completed" else {}}


def _train_record(rng: random.Random, status: str) -> dict:
    name = f"model-{rng.randint(1, 9999)}"
    steps = rng.choice([300, 1000, 2000, 5000])
    options = {"dataset": f"scitldr-{rng.randint(1, 999)}",
               "preset": rng.choice(["cpu_demo", "quick_test", "standard"]),
               "max_steps": steps, "learning_rate": 2e-4, "batch_size": 4,
               "peft": "lora", "lora_preset": rng.choice(["balanced", "high_capacity_moe"]),
               "expert_dropout_rate": 0.1, "gate_dropout_rate": 0.05}
    done = steps if status == "completed" else rng.randint(0, steps)
    metrics = {"status": "completed", "steps": steps, "parameters_total": 1170208,
               "parameters_trainable": 976512, "total_seconds": round(steps / 6.5, 2),
               "best_eval_loss": round(rng.uniform(2, 7), 6),
               "perplexity": round(rng.uniform(10, 700), 4),
               "rouge": {"rouge1": round(rng.uniform(0, 0.4), 4),
                         "rouge2": round(rng.uniform(0, 0.2), 4),
                         "rougeL": round(rng.uniform(0, 0.4), 4)}}
    return {"kind": "train", "name": name, "config": {"name": name, "options": options},
            "progress": {"stage": "train", "current": done, "total": steps,
                         "rate": round(rng.uniform(3, 8), 3), "eta_s": 0.0},
            "result": {"status": "completed", "model": name, "training_status": "completed",
                       "step": steps, "metrics": metrics} if status == "completed" else {}}


def _evaluate_record(rng: random.Random, status: str) -> dict:
    model = f"model-{rng.randint(1, 9999)}"
    samples = rng.choice([50, 100, 200])
    return {"kind": "evaluate", "name": f"eval-{model}",
            "config": {"name": f"eval-{model}", "options": {
                "model": model, "dataset": f"scitldr-{rng.randint(1, 999)}",
                "split": "validation", "max_samples": samples}},
            "progress": {"stage": "evaluate", "current": samples, "total": samples,
                         "rate": 4.2, "eta_s": 0.0},
            "result": {"status": "completed", "samples": samples,
                       "rouge1": round(rng.uniform(0, 0.4), 4),
                       "rouge2": round(rng.uniform(0, 0.2), 4),
                       "rougeL": round(rng.uniform(0, 0.4), 4)} if status == "completed"
            else {}}


def write_jobs(folder: Path, count: int, seed: int = 0) -> None:
    """``count`` finished jobs over the last 60 days: 85 % completed, then failed, cancelled
    and interrupted; 50 % generation, 40 % training, 10 % evaluation."""
    rng = random.Random(seed)
    store = JobStore(folder)
    now = time.time()
    makers = (_generate_record, _train_record, _evaluate_record)
    for i in range(count):
        created = now - (count - i) * 60 * 86400 / count
        status = rng.choices(("completed", "failed", "cancelled", "interrupted"),
                             (85, 8, 5, 2))[0]
        maker = rng.choices(makers, (50, 40, 10))[0]
        kind = maker.__name__.split("_")[1]
        job_id = (f"{kind}-{time.strftime('%Y%m%d-%H%M%S', time.localtime(created))}-"
                  f"{i:06x}")
        fields = maker(rng, status)
        started = created + rng.uniform(0, 30)
        finished = started + rng.uniform(5, 3600)
        store.save(JobRecord(
            job_id, fields["kind"], status=status, name=fields["name"],
            config=fields["config"], progress=fields["progress"], created_at=created,
            started_at=started, finished_at=finished, heartbeat_at=finished,
            owner={"role": "all", "instance": "5f0c2a9e81d4", "host": "bench", "pid": 4242},
            error=("RuntimeError: CUDA out of memory while allocating 2.00 GiB; lower "
                   "batch_size or max_length (see the job log)") if status == "failed"
            else None, result=fields["result"]))


def bench_listing(jobs: int, requests: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        write_jobs(root / "data" / "jobs", jobs)
        log(f"{jobs} job records written in {time.perf_counter() - start:.1f} s")
        with serve(root) as (port, _):
            api = Api(port)
            start = time.perf_counter()
            status, raw = api.call("GET", "/api/jobs")
            cold = time.perf_counter() - start
            listing = json.loads(raw)
            if status != 200 or listing["total"] != jobs or len(listing["jobs"]) != 100:
                raise SystemExit(f"unexpected listing: {status} {raw[:200]!r}")
            for _ in range(5):
                api.call("GET", "/api/jobs")
            times = []
            for _ in range(requests):
                start = time.perf_counter()
                status, raw = api.call("GET", "/api/jobs")
                times.append(time.perf_counter() - start)
                if status != 200:
                    raise SystemExit(f"GET /api/jobs answered {status}")
    return {"jobs_on_disk": jobs, "requests": requests, "page_size": len(listing["jobs"]),
            "response_bytes": len(raw), "cold_first_request_ms": round(cold * 1000, 1),
            **milliseconds(times), "target_p95_ms": 50}


# Part 2: polling clients while a training job runs.

def poll_window(port: int, paths: list[str], clients: int, seconds: float) -> dict:
    """``clients`` threads, each GETting ``paths`` once a second for ``seconds`` (the threads
    are spread over the second)."""
    began = time.time()
    lock = threading.Lock()
    totals: dict = {"requests": 0, "errors": 0, "error_samples": [], "latencies": []}

    def client(index: int) -> None:
        api = Api(port, timeout=30)
        tick = began + index / clients
        while tick < began + seconds:
            time.sleep(max(0.0, tick - time.time()))
            for path in paths:
                sent = time.perf_counter()
                try:
                    status, _ = api.call("GET", path)
                    error = None if status == 200 else f"{path}: HTTP {status}"
                except (OSError, http.client.HTTPException) as exc:
                    error = f"{path}: {type(exc).__name__}: {exc}"
                elapsed = time.perf_counter() - sent
                with lock:
                    totals["requests"] += 1
                    totals["latencies"].append(elapsed)
                    if error:
                        totals["errors"] += 1
                        totals["error_samples"] = (totals["error_samples"] + [error])[:5]
            tick += 1.0
        api.connection.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return totals


def poller(port: int, paths: list[str], clients: int, commands, results) -> None:
    """The separate polling process: one polling window per command, until ``None``."""
    while (seconds := commands.get()) is not None:
        results.put(poll_window(port, paths, clients, seconds))


def wait_job(api: Api, job_id: str, timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, job = api.json("GET", f"/api/jobs/{job_id}")
        if status == 200 and job["status"] in FINAL:
            return job
        time.sleep(0.5)
    raise SystemExit(f"job {job_id} did not finish")


class ProgressSampler(threading.Thread):
    """Reads the job's ``job.json`` from disk every 0.1 s and keeps (written at, step)."""

    def __init__(self, job_file: Path):
        super().__init__(daemon=True)
        self.job_file, self.samples, self.status = job_file, [], "queued"
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                record = json.loads(self.job_file.read_text())
            except (OSError, ValueError):  # not written yet, or being replaced
                record = None
            if record is not None:
                self.status = record["status"]
                current = record["progress"].get("current")
                if current is not None and (not self.samples
                                            or self.samples[-1][0] != record["updated_at"]):
                    self.samples.append((record["updated_at"], current))
            time.sleep(0.1)

    def step(self) -> int:
        return self.samples[-1][1] if self.samples else 0

    def rate(self, opened: float, closed: float) -> dict:
        """Steps per second between the first progress write at or after ``opened`` and the
        last one at or before ``closed``, and the steps at both."""
        inside = [(t, step) for t, step in self.samples if opened <= t <= closed]
        if len(inside) < 2 or inside[-1][1] == inside[0][1]:
            raise SystemExit("too few progress writes in a window")
        rate = (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])
        return {"steps_per_second": round(rate, 3), "from_step": inside[0][1],
                "to_step": inside[-1][1]}


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def bench_polling(args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with serve(root) as (port, server_pid):
            api = Api(port, fresh_after=60)
            status, created = api.json("POST", "/api/benchmark/create", {
                "preset": "scitldr", "max_samples": 32, "name": "bench",
                "page_size": "256x256", "font_size": 12, "margin": 8, "workers": 1})
            if status != 202 or wait_job(api, created["job_id"])["status"] != "completed":
                raise SystemExit(f"dataset generation failed: {status} {created}")
            status, job = api.json("POST", "/api/model/train", {
                "dataset": "bench", "preset": "cpu_demo", "max_steps": args.max_steps,
                "eval_steps": args.max_steps, "save_steps": args.max_steps,
                "name": "polled-run"})
            if status != 202:
                raise SystemExit(f"training job refused: {status} {job}")
            job_id = job["job_id"]
            context = multiprocessing.get_context("spawn")
            commands, results = context.Queue(), context.Queue()
            paths = [f"/api/jobs/{job_id}"] + ([f"/api/metrics/{job_id}"]
                                               if args.poll_metrics else [])
            polling = context.Process(target=poller, args=(port, paths, args.clients,
                                                           commands, results))
            polling.start()  # idle until a polled window: starting it costs no window
            server, pollers = psutil.Process(server_pid), psutil.Process(polling.pid)
            sampler = ProgressSampler(root / "data" / "jobs" / job_id / "job.json")
            sampler.start()
            while sampler.step() < WARMUP_STEPS:
                if sampler.status in FINAL:
                    raise SystemExit(f"the training job ended: {sampler.status}")
                time.sleep(0.1)
            log(f"training job {job_id} at step {sampler.step()}: windows start")
            windows = []
            for index in range(2 * args.rounds + 1):  # baseline, polled, ..., baseline
                polled = index % 2 == 1
                opened = time.time()
                cpu = (cpu_seconds(server), cpu_seconds(pollers))
                if polled:
                    commands.put(args.poll_seconds)
                time.sleep(max(0.0, opened + args.poll_seconds - time.time()))
                window = {"window": index, "polled": polled, **{
                    f"{name}_cpu_cores": round((cpu_seconds(process) - before)
                                               / (time.time() - opened), 2)
                    for name, process, before in (("server", server, cpu[0]),
                                                  ("poller", pollers, cpu[1]))}}
                if polled:
                    totals = results.get(timeout=120)
                    window.update(requests=totals["requests"], errors=totals["errors"],
                                  error_samples=totals["error_samples"],
                                  **milliseconds(totals["latencies"]))
                if sampler.status in FINAL:
                    raise SystemExit(f"the training job ended ({sampler.status}) before the "
                                     "last window; raise --max-steps")
                window.update(sampler.rate(opened, opened + args.poll_seconds))
                windows.append(window)
                log(json.dumps(window))
                time.sleep(GAP_SECONDS)
            commands.put(None)
            polling.join(60)
            api.json("POST", f"/api/jobs/{job_id}/cancel")
            wait_job(api, job_id)
            sampler.stopped.set()
    baseline = [w["steps_per_second"] for w in windows if not w["polled"]]
    polled = [w["steps_per_second"] for w in windows if w["polled"]]
    ratio = statistics.median(polled) / statistics.median(baseline)
    # Each polled window against the mean of the baseline windows on either side of it.
    paired = [polled[i] / ((baseline[i] + baseline[i + 1]) / 2) for i in range(len(polled))]
    loaded = [w for w in windows if w["polled"]]
    return {"clients": args.clients, "window_seconds": args.poll_seconds,
            "polled_paths": ["/api/jobs/<id>"] + (["/api/metrics/<id>"] if args.poll_metrics
                                                  else []),
            "polled_windows": args.rounds, "baseline_windows": args.rounds + 1,
            "warmup_steps_excluded": WARMUP_STEPS,
            "baseline_steps_per_second": round(statistics.median(baseline), 3),
            "polled_steps_per_second": round(statistics.median(polled), 3),
            "ratio_polled_to_baseline": round(ratio, 3),
            "step_rate_drop_percent": round((1 - ratio) * 100, 1),
            "paired_ratios": [round(r, 3) for r in paired],
            "paired_ratio_median": round(statistics.median(paired), 3),
            "target_max_drop_percent": 10,
            "poll_requests": sum(w["requests"] for w in loaded),
            "poll_errors": sum(w["errors"] for w in loaded),
            "poll_p95_ms_per_window": [w["p95_ms"] for w in loaded],
            "poll_max_ms_per_window": [w["max_ms"] for w in loaded],
            "server_cpu_cores_baseline_median": statistics.median(
                w["server_cpu_cores"] for w in windows if not w["polled"]),
            "server_cpu_cores_polled_median": statistics.median(
                w["server_cpu_cores"] for w in loaded),
            "poller_process_cpu_cores_median": statistics.median(
                w["poller_cpu_cores"] for w in loaded),
            "baseline_steps_per_second_per_window": baseline,
            "polled_steps_per_second_per_window": polled,
            "windows": windows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--poll-seconds", type=float, default=30.0)
    parser.add_argument("--rounds", type=int, default=3,
                        help="polled windows, between rounds + 1 baseline windows; medians "
                             "are reported")
    parser.add_argument("--max-steps", type=int, default=5000,
                        help="training steps asked for (the job is cancelled after the last "
                             "window; it must not finish before)")
    parser.add_argument("--poll-metrics", action=argparse.BooleanOptionalAction, default=True,
                        help="pollers also GET /api/metrics/<id> (--no-poll-metrics: only "
                             "the job, to tell the two costs apart)")
    parser.add_argument("--skip-list", action="store_true")
    parser.add_argument("--skip-polling", action="store_true")
    args = parser.parse_args()
    report: dict = {"cpus": os.cpu_count(),
                    "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}
    if not args.skip_list:
        report["list_jobs"] = bench_listing(args.jobs, args.requests)
        log(json.dumps(report["list_jobs"]))
    if not args.skip_polling:
        report["polling_during_training"] = bench_polling(args)
    report["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
