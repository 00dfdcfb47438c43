"""Engines: how the rows a generation accepted become finished shards.

The driver (``generate.py``) reads the source once and decides every row itself (splits,
deduplication, the leakage guard, empty and invalid rows, their counts); an engine only
renders the accepted rows, in the order given, and writes them as shards of ``shard_size``
rows (the last one of a split may be shorter), yielding each finished shard in order. The
driver records each in the manifest as it comes, so both engines share one resume mechanism
and write the same dataset by construction.

``LocalEngine`` renders in this machine's process pool and writes in this process;
``deepsynth.data.ray_engine.RayEngine`` renders and writes each shard as a Ray task.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from deepsynth.config import GenerationConfig
from deepsynth.data.records import Document
from deepsynth.data.render_pool import RenderPool
from deepsynth.data.shards import ShardWriter
from deepsynth.render.legibility import page_counts
from deepsynth.render.renderer import RenderedDocument

RowsDone = Callable[[int, int], None]  # (rows, pages) just written: the driver's progress


@dataclass
class Pending:
    """A row sent to rendering, with the producer's counts as they stood when it was sent."""

    document: Document
    key: bytes
    position: int
    counts: dict[str, int]


@dataclass
class ShardDone:
    """A finished shard: its manifest entry (file, rows, bytes, sha256), what its rows added
    to the counts, the render and write seconds, and its last row."""

    entry: dict
    written: dict[str, int]
    timings: dict[str, float]
    last: Pending


class Engine(Protocol):
    def check_output(self, folder: Path) -> None:
        """Refuse (OutputError) when the engine's writers cannot write ``folder``."""

    def write_split(self, folder: Path, split: str, first_index: int,
                    rows: Iterable[Pending], done: RowsDone) -> Iterator[ShardDone]:
        """Render ``rows`` into shards ``first_index``, ``first_index + 1``... of ``split``."""

    def close(self) -> None: ...


def shard_row(document: Document, key_hex: str, result: RenderedDocument) -> dict:
    """A row of a shard as both engines write it."""
    row = {"id": document.id, "text": document.text, "summary": document.summary,
           "images": [{"bytes": page, "path": None} for page in result.pages],
           **result.stats.to_dict(), "text_sha256": key_hex}
    if result.render_params is not None:
        row["render_params"] = result.render_params
    return row


def add_row_counts(written: dict[str, int], result: RenderedDocument) -> None:
    """Add a written row's counts (pages, truncation, missing glyphs, lossy and unreadable
    pages) to ``written``."""
    stats = result.stats
    for name, value in (("written", 1), ("pages", stats.num_pages),
                        ("truncated", int(stats.truncated_chars > 0)),
                        ("missing_glyphs", stats.missing_glyphs),
                        ("rows_with_missing_glyphs", int(stats.missing_glyphs > 0)),
                        *page_counts(result.page_compression).items()):
        written[name] = written.get(name, 0) + value


def empty_timings() -> dict[str, float]:
    return {"layout": 0.0, "draw": 0.0, "encode": 0.0, "write": 0.0}


class LocalEngine:
    """The process pool of this machine (``workers`` processes; one renders in-process)."""

    def __init__(self, config: GenerationConfig):
        self.shard_size = config.shard_size
        self.variety = config.render.variety.enabled
        self.pool = RenderPool(config.render, config.worker_count)

    def check_output(self, folder: Path) -> None:
        """This process writes: ``prepare_folder`` has proved it can."""

    def write_split(self, folder: Path, split: str, first_index: int,
                    rows: Iterable[Pending], done: RowsDone) -> Iterator[ShardDone]:
        writer: ShardWriter | None = None
        written, timings = {}, empty_timings()
        last: Pending | None = None
        index = first_index
        for pending, result in self.pool.map_ordered(
                (p, p.document.text, p.document.id) for p in rows):
            if writer is None:
                writer = ShardWriter(folder, split, index, variety=self.variety)
            start = time.perf_counter()
            writer.add(shard_row(pending.document, pending.key.hex(), result))
            add_row_counts(written, result)
            for name, seconds in result.timings.items():
                timings[name] += seconds
            timings["write"] += time.perf_counter() - start
            last = pending
            done(1, result.stats.num_pages)
            if writer.rows >= self.shard_size:
                yield self._finish(writer, written, timings, last)
                writer, written, timings, index = None, {}, empty_timings(), index + 1
        if writer is not None:
            yield self._finish(writer, written, timings, last)

    @staticmethod
    def _finish(writer: ShardWriter, written: dict, timings: dict, last: Pending) -> ShardDone:
        start = time.perf_counter()
        entry = writer.finish()
        timings["write"] += time.perf_counter() - start
        return ShardDone(entry, written, timings, last)

    def close(self) -> None:
        self.pool.close()


def open_engine(config: GenerationConfig) -> Engine:
    """The engine ``config.engine`` names, checked and connected (errors before any work)."""
    if config.engine == "ray":
        from deepsynth.data.ray_engine import RayEngine

        return RayEngine(config)
    return LocalEngine(config)
