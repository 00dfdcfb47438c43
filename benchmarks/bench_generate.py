"""Rendering throughput: `deepsynth generate` end to end against a straightforward renderer.

    .venv/bin/python benchmarks/bench_generate.py [--docs 200] [--workers 2]

Corpus: synthetic ~600-word news-like articles, 1024x1024 pages, 18 px DejaVu Sans, 40 px
margins (each article fits one page). The baseline is what one writes first with Pillow: wrap
by measured width, draw each line on an RGB page, save PNG with default settings, one process.
The figures printed are recorded in docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from corpus import write_corpus
from deepsynth.config import GenerationConfig, RenderConfig, SourceConfig
from deepsynth.data.generate import generate_dataset
from deepsynth.render.fonts import bundled_font_path

SIZE, FONT_SIZE, MARGIN, SPACING = 1024, 18, 40, 1.2


def naive_wrap(text: str, font: ImageFont.FreeTypeFont, width: int) -> list[str]:
    lines = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split():
            candidate = f"{line} {word}".strip()
            if font.getlength(candidate) <= width or not line:
                line = candidate
            else:
                lines.append(line)
                line = word
        lines.append(line)
    return lines


def naive_render(texts: list[str]) -> tuple[int, float]:
    """Pages/s of the straightforward single-process renderer."""
    font = ImageFont.truetype(str(bundled_font_path("DejaVuSans")), FONT_SIZE)
    ascent, descent = font.getmetrics()
    line_height = round((ascent + descent) * SPACING)
    per_page = (SIZE - 2 * MARGIN) // line_height
    start = time.perf_counter()
    pages = 0
    for text in texts:
        lines = naive_wrap(text, font, SIZE - 2 * MARGIN)
        for first in range(0, len(lines), per_page):
            page = Image.new("RGB", (SIZE, SIZE), "white")
            draw = ImageDraw.Draw(page)
            for i, line in enumerate(lines[first:first + per_page]):
                draw.text((MARGIN, MARGIN + i * line_height), line, font=font, fill="black")
            page.save(io.BytesIO(), format="PNG")
            pages += 1
    return pages, time.perf_counter() - start


def deepsynth_generate(corpus: Path, out: Path, workers: int) -> tuple[dict, float]:
    config = GenerationConfig(
        out=str(out), workers=workers,
        source=SourceConfig(source=str(corpus), text_field="article",
                            summary_field="highlights", id_field="id"),
        render=RenderConfig(page_size="base", font_size=FONT_SIZE, margin=MARGIN))
    start = time.perf_counter()
    result = generate_dataset(config)
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        corpus = write_corpus(Path(tmp) / "corpus.jsonl", args.docs)
        texts = [json.loads(line)["article"] for line in corpus.open()]
        base_pages, base_seconds = naive_render(texts)
        result, seconds = deepsynth_generate(corpus, Path(tmp) / "out", args.workers)
    pages = result.totals["pages"]
    base_rate, rate = base_pages / base_seconds, pages / seconds
    busy = sum(result.timings.values())
    report = {
        "cpus": os.cpu_count(), "documents": args.docs, "workers": args.workers,
        "mean_words_per_document": round(sum(len(t.split()) for t in texts) / len(texts)),
        "baseline": {"pages": base_pages, "seconds": round(base_seconds, 2),
                     "pages_per_second": round(base_rate, 1)},
        "deepsynth_generate": {"pages": pages, "seconds": round(seconds, 2),
                               "pages_per_second": round(rate, 1)},
        "speedup": round(rate / base_rate, 2),
        "time_split_percent_of_cpu_time": {k: round(100 * v / busy, 1)
                                           for k, v in result.timings.items()},
        "cpu_ms_per_page": {k: round(1000 * v / pages, 2) for k, v in result.timings.items()},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
