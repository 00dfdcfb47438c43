"""Render QA: read a seeded sample of a dataset's pages back with Tesseract, and report the
character error rate per page, per script and overall, worst pages first.

What each page should say comes from laying the row's text out again with the dataset's
render options (the renderer is deterministic; on another machine, fallback fonts may
differ, see docs/rendering.md). The report is stored in the manifest (``qa``) and shown in
the dataset card.
"""

from __future__ import annotations

import os
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from deepsynth.config import RenderConfig, from_dict
from deepsynth.config.requests import QA_SAMPLE
from deepsynth.data.card import write_card
from deepsynth.data.folder_lock import FolderLock
from deepsynth.data.manifest import Manifest
from deepsynth.data.shards import read_shard
from deepsynth.errors import ConfigError, NotFound, OutputError
from deepsynth.render.ocr import (
    OcrUnavailable, character_error_rate, comparable, language_for, ocr_pngs, tesseract_path,
)
from deepsynth.render.variety import build_row_renderer

WORST_SHOWN = 5


@dataclass
class PageCheck:
    split: str
    row: int  # index of the row in its split
    id: str
    page: int  # 0-based
    script: str | None
    language: str | None  # None: no Tesseract pack for the script; not read
    chars: int
    cer: float | None = None


def _all_pages(folder: Path, manifest: Manifest) -> list[tuple[str, int, int, int, int]]:
    """(split, shard, row in shard, row in split, page) of every page of the dataset."""
    pages = []
    for split in manifest.data["split_order"]:
        row = 0
        for index, shard in enumerate(manifest.splits[split].shards):
            counts = read_shard(folder, shard, ["num_pages"]).column("num_pages").to_pylist()
            for in_shard, count in enumerate(counts):
                pages += [(split, index, in_shard, row, page) for page in range(count)]
                row += 1
    return pages


def _checks(folder: Path, manifest: Manifest,
            chosen: list) -> list[tuple[PageCheck, bytes, str]]:
    """Each chosen page's check, PNG and expected text."""
    # Each row laid out as it was drawn: with rendering variety, in its own style.
    renderer = build_row_renderer(from_dict(RenderConfig, manifest.data["config"]["render"]))
    found: list[tuple[PageCheck, bytes, str]] = []
    by_shard: dict[tuple[str, int], list] = {}
    for entry in chosen:
        by_shard.setdefault(entry[:2], []).append(entry)
    for (split, index), entries in by_shard.items():
        table = read_shard(folder, manifest.splits[split].shards[index], ["id", "text", "images"])
        for _, _, in_shard, row, page in entries:
            row_id = table["id"][in_shard].as_py()
            texts = renderer.for_row(row_id).page_texts(table["text"][in_shard].as_py())
            expected = texts[page] if page < len(texts) else ""
            script, language = language_for(expected)
            png = table["images"][in_shard].as_py()[page]["bytes"]
            check = PageCheck(split, row, row_id, page, script, language,
                              len(comparable(expected)))
            found.append((check, png, expected))
    return found


def _read(items: list[tuple[PageCheck, bytes, str]]) -> None:
    """OCR pages of one language with one Tesseract process; sets each page's CER."""
    texts = ocr_pngs([png for _, png, _ in items], items[0][0].language)
    for (check, _, expected), read in zip(items, texts, strict=True):
        check.cer = round(character_error_rate(expected, read), 4)


def _batches(items: list, workers: int) -> list[list]:
    """Pages grouped by language, each group cut in up to ``workers`` batches."""
    groups: dict[str, list] = {}
    for item in items:
        if item[0].language is not None:
            groups.setdefault(item[0].language, []).append(item)
    batches = []
    for group in groups.values():
        size = -(-len(group) // workers)
        batches += [group[i:i + size] for i in range(0, len(group), size)]
    return batches


def _summary(checks: list[PageCheck]) -> dict:
    read = [c for c in checks if c.cer is not None]
    scripts: dict[str, dict] = {}
    for check in read:
        entry = scripts.setdefault(check.script or "none", {"pages": 0, "chars": 0, "errors": 0.0})
        entry["pages"] += 1
        entry["chars"] += check.chars
        entry["errors"] += check.cer * check.chars
    chars = sum(c.chars for c in read)

    def rate(errors: float, count: int) -> float | None:
        return round(errors / count, 4) if count else None
    return {
        "cer": rate(sum(c.cer * c.chars for c in read), chars),  # weighted by characters
        "by_script": {script: {"pages": e["pages"], "chars": e["chars"],
                               "cer": rate(e["errors"], e["chars"])}
                      for script, e in sorted(scripts.items())},
        "not_read": {script: sum(1 for c in checks if c.cer is None and c.script == script)
                     for script in sorted({c.script or "none" for c in checks
                                           if c.cer is None})},
        "worst": [asdict(c) for c in sorted(read, key=lambda c: -c.cer)[:WORST_SHOWN]],
    }


def require_tesseract() -> None:
    """Refuse (OcrUnavailable) where Tesseract is not installed."""
    if not tesseract_path():
        raise OcrUnavailable("render QA needs Tesseract: apt-get install tesseract-ocr "
                             "(and tesseract-ocr-ara, -heb, -hin ... for other scripts)")


def qa_report(folder: Path, manifest: Manifest, sample: int, seed: int = 0,
              workers: int | None = None) -> dict:
    """OCR ``sample`` pages of the dataset ``manifest`` describes, chosen with ``seed``; the
    report (``run_qa`` stores it; a generation with ``qa_sample`` stores it in its own
    manifest, under the folder lock it holds, before its card is written and uploaded)."""
    require_tesseract()
    pages = _all_pages(folder, manifest)
    chosen = sorted(random.Random(seed).sample(pages, min(sample, len(pages))))
    items = _checks(folder, manifest, chosen)
    workers = workers or os.cpu_count() or 1
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(_read, _batches(items, workers)))
    checks = [check for check, _, _ in items]
    return {"sample": len(checks), "of_pages": len(pages), "seed": seed, **_summary(checks)}


def _shards(manifest: Manifest) -> dict[str, list]:
    return {name: split.shards for name, split in manifest.splits.items()}


def run_qa(folder: Path, sample: int = QA_SAMPLE, seed: int = 0,
           workers: int | None = None) -> dict:
    """OCR ``sample`` pages chosen with ``seed``; the report, also saved in the manifest."""
    folder = Path(folder)
    if sample < 1:
        raise ConfigError("sample", f"must be at least 1; got {sample}", "an integer >= 1")
    manifest = Manifest.load(folder)
    if manifest is None:
        raise NotFound(f"{folder} is not a dataset made by deepsynth (no manifest)")
    report = qa_report(folder, manifest, sample, seed, workers)
    with FolderLock(folder):  # a generation writing this folder keeps its manifest
        read, manifest = _shards(manifest), Manifest.load(folder)
        if manifest is None or _shards(manifest) != read:
            raise OutputError(f"{folder} was written again while render QA read it; the "
                              f"report would describe pages it no longer has: run QA again")
        manifest.data["qa"] = report
        manifest.save()
        write_card(folder, manifest)
    return report
