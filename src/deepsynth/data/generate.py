"""Dataset generation: stream a corpus, render it in parallel, write resumable Parquet shards.

Rows flow source -> field mapping -> filters (empty text or summary, duplicate, leaked into
an evaluation split; decided on the text the renderer draws) -> render pool -> shard writer,
in source order and in bounded memory. After each finished shard the manifest records how
far the source was read and every count, so a re-run (after a crash, SIGKILL or a stop
request) continues exactly where the last shard ended; a finished shard found damaged then
(its SHA-256 differs, or it is gone) is rendered again.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from deepsynth.config import GenerationConfig, validate
from deepsynth.data.card import write_card
from deepsynth.data.engines import Engine, Pending, ShardDone, open_engine
from deepsynth.data.folder_lock import FolderLock
from deepsynth.data.manifest import Manifest, SplitState
from deepsynth.data.output_folder import (
    check_disk_space, drop_damaged_shards, open_manifest, prepare_folder,
)
from deepsynth.data.qa import qa_report, require_tesseract
from deepsynth.data.records import (
    Document, content_key, first_row, is_blank, row_document,
)
from deepsynth.data.shards import read_column
from deepsynth.data.sources import FieldMapping, RawRow, Source, open_source
from deepsynth.data.split_plan import SplitPlan, plan_splits
from deepsynth.errors import BadRow, DeepSynthError, SourceError
from deepsynth.hub.publish import NoPublish, ShardPublisher
from deepsynth.hub.upload import HubUploader, HfHubClient, HubClient
from deepsynth.progress import ProgressCallback, RateMeter, StopFlag, never_stop, no_progress
from deepsynth.render.variety import build_row_renderer

log = logging.getLogger(__name__)
SAMPLE_ROWS = 4
PRODUCER_COUNTS = ("read", "duplicates", "leaked", "empty", "empty_summary", "invalid")
SKIP_REASONS = {"empty": "no text to draw (empty, whitespace or invisible characters)",
                "empty_summary": "empty summary (empty, whitespace or invisible characters)"}
EXAMPLES_KEPT = 3  # skipped rows named per reason in the result (and the job's log)


@dataclass
class GenerationResult:
    folder: Path
    status: str  # complete | stopped
    rows: dict[str, int]
    totals: dict[str, int]
    timings: dict[str, float] = field(default_factory=dict)
    hub_error: str | None = None
    damaged_shards: list[str] = field(default_factory=list)  # found on resume, rendered again
    skipped: dict[str, list[str]] = field(default_factory=dict)  # this run's first, by count
    qa: dict | None = None  # the render QA report of --qa-sample (data/qa.py)


class _Generation:
    def __init__(self, config: GenerationConfig, folder: Path, source: Source,
                 mapping: FieldMapping, manifest: Manifest, publisher: NoPublish | ShardPublisher,
                 progress: ProgressCallback, should_stop: StopFlag, engine: Engine):
        self.config, self.folder, self.source, self.mapping = config, folder, source, mapping
        self.engine = engine
        self.manifest, self.publisher = manifest, publisher
        self.progress, self.should_stop = progress, should_stop
        self.timings = {"layout": 0.0, "draw": 0.0, "encode": 0.0, "write": 0.0}
        self.stopped = False
        self.failure: DeepSynthError | None = None
        self.damaged_shards: list[str] = []
        self.skipped: dict[str, list[str]] = {}

    def run(self, plans: list[SplitPlan]) -> GenerationResult:
        self._check_space(plans)
        done = sum(s.rows for s in self.manifest.splits.values())
        self.meter = RateMeter(self._total_rows(plans), done)
        self.done = done
        eval_keys: set[bytes] = set()
        for plan in plans:
            state = self.manifest.splits[plan.name]
            if state.status != "complete":
                self._run_split(plan, state, eval_keys)
                if self.stopped or self.failure:
                    break
            if plan.is_eval:
                eval_keys.update(self._keys(state))
        return self._finish()

    def _finish(self) -> GenerationResult:
        data = self.manifest.data
        data["status"] = "failed" if self.failure else "stopped" if self.stopped else "complete"
        data["error"] = str(self.failure) if self.failure else None
        data["timings"] = {k: round(v, 3) for k, v in self.timings.items()}
        qa = None
        if self.config.qa_sample and data["status"] == "complete":
            self.manifest.save()  # complete, whatever the QA meets
            # The report of `deepsynth qa --sample N` (seed 0), stored as it stores it, before
            # the card is written and uploaded with it.
            qa = data["qa"] = qa_report(self.folder, self.manifest, self.config.qa_sample,
                                        workers=self.config.worker_count)
        self.manifest.save()
        write_card(self.folder, self.manifest)
        if self.failure:
            raise self.failure
        if not self.stopped:
            self.publisher.finish(self.folder, self.manifest)
        return GenerationResult(
            self.folder, data["status"], {n: s.rows for n, s in self.manifest.splits.items()},
            self.manifest.totals(), dict(self.timings), self.publisher.error,
            self.damaged_shards, self.skipped, qa)

    def _keys(self, state: SplitState) -> set[bytes]:
        return {bytes.fromhex(h) for h in read_column(self.folder, state.shards, "text_sha256")}

    def _rows_to_write(self, plan: SplitPlan) -> int | None:
        known = self.source.num_rows(plan.source_split)
        if known is not None and plan.holdout_fraction is not None:
            share = plan.holdout_fraction if plan.holdout_side else 1 - plan.holdout_fraction
            known = math.ceil(known * share)
        cap = self.config.source.max_samples
        rows = min(known, cap) if known is not None and cap else known or cap
        return None if rows is None else max(rows - self.manifest.splits[plan.name].rows, 0)

    def _total_rows(self, plans: list[SplitPlan]) -> int | None:
        counts = [self._rows_to_write(p) for p in plans]
        if any(c is None for c in counts):
            return None
        return sum(counts) + sum(s.rows for s in self.manifest.splits.values())

    def _check_space(self, plans: list[SplitPlan]) -> None:
        rows = self._total_rows(plans)
        if rows is None or rows == 0:
            check_disk_space(self.folder, 0, None)
            return
        renderer = build_row_renderer(self.config.render)
        sizes = []
        for raw in self.source.rows(plans[0].source_split):
            if len(sizes) >= SAMPLE_ROWS:
                break
            if raw.fields is None:
                continue
            try:
                document = row_document(raw, self.mapping, "sample")
            except SourceError:
                continue
            pages = renderer.render_row(document.text, document.id).pages
            sizes.append(sum(map(len, pages)) + 2 * len(document.text.encode()))
        if sizes:
            check_disk_space(self.folder, sum(sizes) / len(sizes),
                             rows - sum(s.rows for s in self.manifest.splits.values()))

    # The producer: reads the source and decides which rows are rendered.
    def _accepted(self, plan: SplitPlan, state: SplitState, seen: set[bytes],
                  eval_keys: set[bytes], counts: dict[str, int]) -> Iterator[Pending]:
        cap = self.config.source.max_samples
        accepted = state.rows
        for raw in self._source_rows(plan.source_split, state.source_rows_read):
            if cap and accepted >= cap:
                return
            if self.should_stop():
                self.stopped = True
                return
            self.position = raw.position
            document = self._document(raw, plan, counts)
            if self.failure is not None:
                return
            if document is None:
                continue
            key = content_key(document.text)
            if not plan.keeps(key):
                continue
            counts["read"] += 1
            blank = ("empty" if is_blank(document.text) else
                     "empty_summary" if is_blank(document.summary) else None)
            if blank:
                counts[blank] += 1
                self._skipped(blank, f"{raw.where}: {SKIP_REASONS[blank]}")
                continue
            if self.config.dedup and key in seen:
                counts["duplicates"] += 1
                continue
            if not plan.is_eval and key in eval_keys:
                counts["leaked"] += 1
                continue
            seen.add(key)
            accepted += 1
            yield Pending(document, key, raw.position, dict(counts))

    def _source_rows(self, split: str, start: int) -> Iterator[RawRow]:
        """The split's rows from ``start``; an error that ends the reading of a file (JSON
        that is not valid inside an array, a corrupt gzip) fails the run after the rows
        before it, which are written and kept, as after a bad row under on_error fail."""
        try:
            yield from self.source.rows(split, start=start)
        except SourceError as exc:
            self.failure = exc

    def _document(self, raw: RawRow, plan: SplitPlan, counts: dict[str, int]) -> Document | None:
        try:
            return row_document(raw, self.mapping, f"{plan.name}-{raw.position}")
        except SourceError as exc:
            error = str(exc)
        if self.config.source.on_error == "fail":
            self.failure = BadRow(f"{error} (use --on-error skip to skip bad rows)")
            return None
        if plan.counts_skips:
            counts["read"] += 1
            counts["invalid"] += 1
            self._skipped("invalid", error)
        else:
            log.warning("skipped %s", error)
        return None

    def _skipped(self, count: str, message: str) -> None:
        """Log a skipped row with its reason; keep the first few of each count."""
        log.warning("skipped %s", message)
        examples = self.skipped.setdefault(count, [])
        if len(examples) < EXAMPLES_KEPT:
            examples.append(message)

    def _run_split(self, plan: SplitPlan, state: SplitState, eval_keys: set[bytes]) -> None:
        state.status = "in_progress"
        seen = self._keys(state)
        counts = {name: state.counts.get(name, 0) for name in PRODUCER_COUNTS}
        written = {name: value for name, value in state.counts.items()
                   if name not in PRODUCER_COUNTS}
        self.position = state.source_rows_read - 1
        pages = written.get("pages", 0)

        def rows_done(rows: int, new_pages: int) -> None:
            nonlocal pages
            self.done += rows
            pages += new_pages
            self.progress(self.meter.report(plan.name, self.done, pages))

        produced = self._accepted(plan, state, seen, eval_keys, counts)
        for shard in self.engine.write_split(self.folder, plan.name, len(state.shards),
                                             produced, rows_done):
            self._close_shard(shard, state, counts, written)
        if not (self.stopped or self.failure):
            state.counts = {**counts, **written}
            state.source_rows_read = self.position + 1
            state.status = "complete"
            self.manifest.save()

    def _close_shard(self, shard: ShardDone, state: SplitState, counts: dict[str, int],
                     written: dict[str, int]) -> None:
        """Record a finished shard with the split's state right after it (a re-run that
        finds the next shard damaged goes back to it). A shard shorter than shard_size is
        the split's last: once the producer has read the whole split it ends at the split's
        final counts, else (stopped, failed) at its last row."""
        for name, value in shard.written.items():
            written[name] = written.get(name, 0) + value
        for name, seconds in shard.timings.items():
            self.timings[name] += seconds
        start = time.perf_counter()
        last = shard.last
        if shard.entry["rows"] < self.config.shard_size and not (self.stopped or self.failure):
            after, position = {**counts, **written}, self.position + 1
        else:
            after, position = {**last.counts, **written}, last.position + 1
        entry = {**shard.entry, "source_rows_read": position, "counts": dict(after)}
        state.shards.append(entry)
        state.counts = dict(after)
        state.source_rows_read = position
        self.manifest.save()
        self.timings["write"] += time.perf_counter() - start
        self.publisher.shard_done(self.folder, self.manifest, entry["file"])


def _publisher(config: GenerationConfig, hub_client: HubClient | None,
               backoff_seconds: float) -> NoPublish | ShardPublisher:
    if not config.push_to_hub:
        return NoPublish()
    client = hub_client if hub_client is not None else HfHubClient()
    # The repository is created with the first upload: an unreachable Hub must not keep the
    # dataset from being generated locally.
    uploader = HubUploader(client, config.push_to_hub, private=not config.public,
                               backoff_seconds=backoff_seconds)
    return ShardPublisher(uploader)


def generate_dataset(config: GenerationConfig, progress: ProgressCallback = no_progress,
                     should_stop: StopFlag = never_stop, hub_client: HubClient | None = None,
                     backoff_seconds: float = 2.0) -> GenerationResult:
    """Generate (or resume) the dataset described by ``config`` into ``config.out``."""
    validate(config)
    source = open_source(config.source.source)
    src = config.source
    mapping = source.fields.override(src.text_field, src.summary_field, src.id_field)
    plans = plan_splits(source, src)
    if not plans:
        raise SourceError(f"{source.name}: no splits to generate")
    try:
        first = first_row(source.rows(plans[0].source_split), mapping, src.on_error)
    except BadRow as exc:  # the row the generation would stop at
        raise BadRow(f"{exc} (use --on-error skip to skip bad rows)") from None
    if first is None:
        raise SourceError(f"{source.name}: split {plans[0].source_split!r} has no readable "
                          f"rows")
    build_row_renderer(config.render)  # a bad font or tokenizer fails here, before any work
    if config.qa_sample:
        require_tesseract()  # before any work, not after the dataset is written
    folder = prepare_folder(config.out_folder)
    engine = open_engine(config)  # Ray missing, unreachable or without CPUs: before any work
    try:
        engine.check_output(folder)
        with FolderLock(folder):
            manifest = open_manifest(folder, config, [p.name for p in plans])
            damaged = drop_damaged_shards(folder, manifest)
            publisher = _publisher(config, hub_client, backoff_seconds)
            run = _Generation(config, folder, source, mapping, manifest, publisher, progress,
                              should_stop, engine)
            run.damaged_shards = damaged
            return run.run(plans)
    finally:
        engine.close()
