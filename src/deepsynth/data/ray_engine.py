"""The Ray engine: each shard is rendered and written by a Ray task on a cluster.

The driver (this process) plans every row as for a local run (generate.py's producer: splits,
deduplication, the leakage guard, skipped counts), cuts the accepted rows into shards of
``shard_size`` and sends each to a task that renders it and writes the shard straight into
the output folder, which must be a path every node sees (a shared file system). A bounded
window of shards is in flight (twice the cluster's CPUs) and their results are taken in
order, so the manifest grows shard by shard as for a local run and the driver's memory is
bounded by the window, not by the corpus.

A task lost with its node is run again elsewhere by Ray (``max_retries``); every attempt
writes its own temp file and renames it to the shard's name, so a shard is never half
written or written twice. A shard a killed driver never recorded is dropped on resume
(``output_folder.open_manifest``) and written again.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path

from deepsynth.config import GenerationConfig, RenderConfig, from_dict, to_dict
from deepsynth.config.dataset import RAY_MISSING
from deepsynth.data.engines import (
    Pending,
    RowsDone,
    ShardDone,
    add_row_counts,
    empty_timings,
    shard_row,
)
from deepsynth.data.records import Document
from deepsynth.data.shards import ShardWriter
from deepsynth.errors import ConfigError, OutputError

CONNECT_TIMEOUT_SECONDS = 5.0
TASK_RETRIES = 5  # a task whose node is lost runs again elsewhere, up to this many times
SHARDS_PER_CPU = 2  # in flight: enough to keep every CPU busy while the driver records

_renderers: dict[str, object] = {}  # per worker process: a renderer per render config


def import_ray():
    """The ray module, or a ConfigError naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise ConfigError("engine", RAY_MISSING, "local, or install the ray extra") from None
    return ray


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.removeprefix("ray://").rpartition(":")
    return host.strip("[]"), int(port)


def check_reachable(address: str) -> None:
    """Refuse an address nothing listens at, in seconds (ray.init would wait for minutes)."""
    host, port = _host_port(address)
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_SECONDS):
            pass
    except OSError as exc:
        raise ConfigError("ray_address", f"is unreachable: nothing answers at {address} "
                          f"({exc.strerror or exc}); is `ray start --head` running there?",
                          "the address of a running Ray head (HOST:PORT)") from None


def connect(address: str | None, local_cpus: int):
    """Connect this process to the cluster (once: the connection is the process's), or start
    Ray on this machine with ``local_cpus`` CPUs when no address is given."""
    ray = import_ray()
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address and address != "auto":
        check_reachable(address)
    if not ray.is_initialized():
        try:
            ray.init(address=address, num_cpus=None if address else local_cpus,
                     include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = address or "a new local cluster"
            raise ConfigError("ray_address", f"could not be connected to ({where}): "
                              f"{str(exc).splitlines()[0][:300]}",
                              "the address of a running Ray head") from None
    return ray


def _renderer(render: dict):
    from deepsynth.render.variety import build_row_renderer

    key = json.dumps(render, sort_keys=True)
    if key not in _renderers:
        _renderers[key] = build_row_renderer(from_dict(RenderConfig, render))
    return _renderers[key]


def render_shard(render: dict, folder: str, split: str, index: int,
                 rows: list[tuple[str, str, str, str]]) -> tuple[dict, dict, dict]:
    """The task: render ``rows`` (id, text, summary, dedup key) and write them as shard
    ``index`` of ``split``; returns its manifest entry, counts and timings."""
    renderer = _renderer(render)
    writer = ShardWriter(Path(folder), split, index, attempt=uuid.uuid4().hex,
                         variety=from_dict(RenderConfig, render).variety.enabled)
    written, timings = {}, empty_timings()
    try:
        for doc_id, text, summary, key in rows:
            result = renderer.render_row(text, doc_id)
            start = time.perf_counter()
            writer.add(shard_row(Document(doc_id, text, summary), key, result))
            add_row_counts(written, result)
            for name, seconds in result.timings.items():
                timings[name] += seconds
            timings["write"] += time.perf_counter() - start
        start = time.perf_counter()
        entry = writer.finish()
    except BaseException:
        writer.abort()
        raise
    timings["write"] += time.perf_counter() - start
    return entry, written, timings


def probe_write(folder: str) -> str:
    """The task that proves a node can write the output folder; returns its host name."""
    with tempfile.TemporaryFile(dir=folder):
        pass
    return socket.gethostname()


class RayEngine:
    """Shards as Ray tasks of one CPU each, over the cluster ``ray_address`` names."""

    def __init__(self, config: GenerationConfig):
        self.ray = connect(config.ray_address, config.worker_count)
        self.shard_size = config.shard_size
        self.render = to_dict(config.render)
        cpus = int(self.ray.cluster_resources().get("CPU", 0))
        if cpus < 1:
            raise ConfigError("ray_address", f"names a Ray cluster with no CPUs (resources: "
                              f"{self.ray.cluster_resources()}); each render task needs 1",
                              "a cluster with CPUs (ray start --num-cpus N)")
        self.window = SHARDS_PER_CPU * cpus
        self._render = self.ray.remote(num_cpus=1, max_retries=TASK_RETRIES)(render_shard)

    def check_output(self, folder: Path) -> None:
        """Every alive node writes a temp file into ``folder``."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        probe = self.ray.remote(num_cpus=0, max_retries=0)(probe_write)
        nodes = [n for n in self.ray.nodes() if n.get("Alive")]
        refs = [probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
            n["NodeID"], soft=False)).remote(str(folder)) for n in nodes]
        for node, ref in zip(nodes, refs, strict=True):
            try:
                self.ray.get(ref, timeout=120)
            except Exception as exc:  # noqa: BLE001 - any failure of the probe refuses
                cause = getattr(exc, "cause", None) or exc
                raise OutputError(f"Ray node {node.get('NodeManagerAddress')} cannot write "
                                  f"the output folder {folder} ({cause}); the Ray engine "
                                  "needs a folder every node sees (a shared file "
                                  "system)") from None

    def write_split(self, folder: Path, split: str, first_index: int,
                    rows: Iterable[Pending], done: RowsDone) -> Iterator[ShardDone]:
        window: deque[tuple[object, Pending]] = deque()
        batch: list[Pending] = []
        index = first_index
        try:
            for pending in rows:
                batch.append(pending)
                if len(batch) >= self.shard_size:
                    window.append(self._submit(folder, split, index, batch))
                    batch, index = [], index + 1
                    while len(window) >= self.window:
                        yield self._collect(*window.popleft(), done)
            if batch:
                window.append(self._submit(folder, split, index, batch))
            while window:
                yield self._collect(*window.popleft(), done)
        finally:  # a failed run: shards after the failure are not recorded, so not needed
            for ref, _ in window:
                self.ray.cancel(ref, force=True)

    def _submit(self, folder: Path, split: str, index: int,
                batch: list[Pending]) -> tuple[object, Pending]:
        rows = [(p.document.id, p.document.text, p.document.summary, p.key.hex())
                for p in batch]
        return self._render.remote(self.render, str(folder), split, index, rows), batch[-1]

    def _collect(self, ref: object, last: Pending, done: RowsDone) -> ShardDone:
        try:
            entry, written, timings = self.ray.get(ref)
        except self.ray.exceptions.RayError as exc:
            cause = getattr(exc, "cause", None) or exc
            raise OutputError(f"a Ray render task failed: {str(cause).splitlines()[0]}") \
                from None
        done(written.get("written", 0), written.get("pages", 0))
        return ShardDone(entry, written, timings, last)

    def close(self) -> None:
        """The connection stays: it is the process's (the web service runs jobs in threads)."""
