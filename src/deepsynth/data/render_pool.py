"""Rendering across worker processes, results in input order, with bounded memory.

Items are sent in small chunks and at most a few chunks per worker are in flight, so a corpus
of any size streams through without being queued in memory. One worker renders in-process.
"""

from __future__ import annotations

import multiprocessing
import signal
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, TypeVar

from deepsynth.config import RenderConfig, from_dict, to_dict
from deepsynth.render.renderer import RenderedDocument
from deepsynth.render.variety import build_row_renderer

T = TypeVar("T")
CHUNK_ROWS = 8
CHUNKS_PER_WORKER = 3

_worker_renderer: object = None  # a Renderer or VarietyRenderer (build_row_renderer)


def _init_worker(render_config: dict[str, Any]) -> None:
    global _worker_renderer
    # Ctrl-C reaches the whole process group; the parent decides how to stop, not the workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _worker_renderer = build_row_renderer(from_dict(RenderConfig, render_config))


def _render_chunk(rows: list[tuple[str, str]]) -> list[RenderedDocument]:
    assert _worker_renderer is not None, "worker initializer did not run"
    return [_worker_renderer.render_row(text, row_id) for text, row_id in rows]


class RenderPool:
    """``map_ordered`` renders the text of each (item, text, row id) and yields (item,
    result) in order; the row id picks the row's style under rendering variety."""

    def __init__(self, config: RenderConfig, workers: int):
        self.workers = workers
        self._renderer = build_row_renderer(config) if workers <= 1 else None
        self._executor = None
        if workers > 1:
            # forkserver: safe to start from a threaded process (the web server runs jobs
            # in threads), and cheaper than spawn.
            context = multiprocessing.get_context("forkserver")
            # Imported once in the fork server, so each worker starts without re-importing.
            context.set_forkserver_preload(["deepsynth.render.variety"])
            self._executor = ProcessPoolExecutor(
                max_workers=workers, mp_context=context,
                initializer=_init_worker, initargs=(to_dict(config),))

    def map_ordered(self, items: Iterable[tuple[T, str, str]]
                    ) -> Iterator[tuple[T, RenderedDocument]]:
        if self._executor is None:
            for item, text, row_id in items:
                yield item, self._renderer.render_row(text, row_id)
            return
        window: deque[tuple[list[T], Future]] = deque()
        limit = self.workers * CHUNKS_PER_WORKER
        chunk: list[tuple[T, str, str]] = []
        for pair in items:
            chunk.append(pair)
            if len(chunk) >= CHUNK_ROWS:
                window.append(self._submit(chunk))
                chunk = []
                while len(window) >= limit:
                    yield from self._collect(window.popleft())
        if chunk:
            window.append(self._submit(chunk))
        while window:
            yield from self._collect(window.popleft())

    def _submit(self, chunk: list[tuple[T, str, str]]) -> tuple[list[T], Future]:
        return [item for item, _, _ in chunk], self._executor.submit(
            _render_chunk, [(text, row_id) for _, text, row_id in chunk])

    @staticmethod
    def _collect(entry: tuple[list[T], Future]) -> Iterator[tuple[T, RenderedDocument]]:
        items, future = entry
        yield from zip(items, future.result(), strict=True)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def __enter__(self) -> RenderPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
