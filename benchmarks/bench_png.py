"""PNG encoding of one 1024x1024 text page: Pillow's encoder against DeepSynth's.

    .venv/bin/python benchmarks/bench_png.py

Prints milliseconds per page and bytes for Pillow at levels 1 and 6 (RGB and gray) and for
`deepsynth.render.page.encode_png` at levels 1 to 3 (ISA-L) and 6 (zlib).
"""

from __future__ import annotations

import io
import json
import random
import time

from corpus import article
from deepsynth.config import RenderConfig
from deepsynth.render.page import encode_png
from deepsynth.render.renderer import build_renderer


def timed(encode, repeats: int = 40) -> tuple[float, int]:
    size = len(encode())
    start = time.perf_counter()
    for _ in range(repeats):
        encode()
    return round((time.perf_counter() - start) / repeats * 1000, 2), size


def pillow(image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **options)
    return buffer.getvalue()


def main() -> None:
    gray = build_renderer(RenderConfig()).render_images(article(random.Random(0)))[0]
    rgb = gray.convert("RGB")
    results = {
        "pillow rgb default (level 6)": timed(lambda: pillow(rgb)),
        "pillow gray level 1": timed(lambda: pillow(gray, compress_level=1)),
        "pillow gray level 6": timed(lambda: pillow(gray, compress_level=6)),
    }
    for level in (1, 2, 3, 6):
        results[f"deepsynth gray level {level}"] = timed(lambda n=level: encode_png(gray, n))
    results["deepsynth rgb level 1"] = timed(lambda: encode_png(rgb, 1))
    print(json.dumps({k: {"ms": ms, "bytes": size} for k, (ms, size) in results.items()},
                     indent=2))


if __name__ == "__main__":
    main()
