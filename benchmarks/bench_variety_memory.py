"""Memory and time of rendering variety over many fonts and sizes, on many distinct words.

    .venv/bin/python benchmarks/bench_variety_memory.py [--rows 6000]

One process renders ``--rows`` rows of 300 words with three fonts at 10-40 px (93 font and
size pairs, each with its caches of measured words and word masks), line spacing 1.0-1.6,
margins 10-60, on 1024x1024 pages. The words come from a vocabulary of 60,000 made-up
words, drawn half uniformly and half Zipf-like, as a real corpus has many distinct words.
Prints the peak resident memory and the elapsed time every 500 rows.
"""

from __future__ import annotations

import argparse
import random
import resource
import time

from deepsynth.config import RenderConfig, from_dict
from deepsynth.render.variety import build_row_renderer

VOCABULARY = 60_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=6000)
    args = parser.parse_args()
    config = from_dict(RenderConfig, {
        "page_size": "base", "vary_fonts": ["DejaVuSans", "DejaVuSerif", "DejaVuSansMono"],
        "vary_font_size_min": 10, "vary_font_size_max": 40, "vary_margin_min": 10,
        "vary_margin_max": 60, "vary_line_spacing_min": 1.0, "vary_line_spacing_max": 1.6,
        "overflow": "paginate", "max_pages": 4})
    renderer = build_row_renderer(config)
    rng = random.Random(0)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 11)))
             for _ in range(VOCABULARY)]

    def word() -> str:
        if rng.random() < 0.5:
            return rng.choice(words)
        return words[min(int(rng.paretovariate(0.6)) - 1, VOCABULARY - 1)]

    start = time.perf_counter()
    for index in range(args.rows):
        renderer.render_row(" ".join(word() for _ in range(300)), f"row-{index}")
        if (index + 1) % 500 == 0 or index + 1 == args.rows:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
            print(f"{index + 1} rows: peak {peak} MiB, {time.perf_counter() - start:.0f} s",
                  flush=True)


if __name__ == "__main__":
    main()
