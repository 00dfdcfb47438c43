"""Training data pipeline throughput: decode PNG, prepare pages, collate at 1024x1024.

    .venv/bin/python benchmarks/bench_data.py [--docs 200] [--workers 2] [--image-mode crops]

Generates a dataset of 1024x1024 pages from the built-in corpus, then iterates DeepSynth's
training DataLoader (augmentation off) with the given loader workers and prints pages/s.
Pages are prepared for DeepSeek-OCR-2 at its real 1024 px, as its processor does (global
view; in crops mode also 2 x 2 crops of 768 px).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from deepsynth.models.tiny import build_tokenizer
from deepsynth.render.tokens import IMAGE_MODES
from deepsynth.training.data import Collator, ExampleEncoder, PageDataset, load_split
from deepsynth.training.pages import PageFormat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--image-mode", choices=IMAGE_MODES, default="global")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "dataset"
        subprocess.run([sys.executable, "-m", "deepsynth", "generate", "--source",
                        "builtin:scitldr", "--out", str(out), "--split", "train",
                        "--max-samples", str(args.docs), "--page-size", "base"],
                       check=True, capture_output=True)
        tokenizer = build_tokenizer()
        encoder = ExampleEncoder(tokenizer, 3, 257, "Summarize this document.", 512)
        pages_format = PageFormat("deepseek_ocr2", 1024, args.image_mode)
        data = PageDataset(load_split(str(out), "train", 4), encoder, pages_format)
        loader = torch.utils.data.DataLoader(data, batch_size=args.batch_size,
                                             num_workers=args.workers,
                                             collate_fn=Collator(tokenizer.pad_token_id))
        start = time.perf_counter()
        pages = crops = 0
        for batch in loader:
            pages += batch["pages"].shape[0]
            crops += len(batch.get("crops", ()))
        seconds = time.perf_counter() - start
    print(json.dumps({"documents": args.docs, "pages": pages, "crops": crops,
                      "image_mode": args.image_mode, "loader_workers": args.workers,
                      "page_size": "1024x1024", "seconds": round(seconds, 2),
                      "pages_per_second": round(pages / seconds, 1),
                      "batch_shape": list(batch["pages"].shape),
                      "batch_dtype": str(batch["pages"].dtype)}, indent=2))


if __name__ == "__main__":
    main()
