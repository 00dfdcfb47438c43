"""Training data pipeline throughput: decode PNG, transform, collate at 1024x1024.

    .venv/bin/python benchmarks/bench_data.py [--docs 200] [--workers 2]

Generates a dataset of 1024x1024 pages from the built-in corpus, then iterates DeepSynth's
training DataLoader (augmentation off) with the given loader workers and prints pages/s.
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
from deepsynth.training.data import Collator, ExampleEncoder, PageDataset, load_split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "dataset"
        subprocess.run([sys.executable, "-m", "deepsynth", "generate", "--source",
                        "builtin:scitldr", "--out", str(out), "--split", "train",
                        "--max-samples", str(args.docs), "--page-size", "base"],
                       check=True, capture_output=True)
        tokenizer = build_tokenizer()
        encoder = ExampleEncoder(tokenizer, 3, 257, "Summarize this document.", 512)
        data = PageDataset(load_split(str(out), "train", 4), encoder, 1024)
        loader = torch.utils.data.DataLoader(data, batch_size=args.batch_size,
                                             num_workers=args.workers,
                                             collate_fn=Collator(tokenizer.pad_token_id))
        start = time.perf_counter()
        pages = 0
        for batch in loader:
            pages += batch["pages"].shape[0]
        seconds = time.perf_counter() - start
    print(json.dumps({"documents": args.docs, "pages": pages, "loader_workers": args.workers,
                      "page_size": "1024x1024", "seconds": round(seconds, 2),
                      "pages_per_second": round(pages / seconds, 1),
                      "batch_shape": list(batch["pages"].shape),
                      "batch_dtype": str(batch["pages"].dtype)}, indent=2))


if __name__ == "__main__":
    main()
