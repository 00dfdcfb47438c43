"""Training-step speed: DeepSynth's loop against a minimal hand-written PyTorch loop.

    .venv/bin/python benchmarks/bench_train.py [--steps 60]

Tiny DeepSeek-OCR-2, batch 4, 256 px pages, float32, decoder fully trainable, vision frozen.
The hand-written loop is forward, backward, AdamW step over the same batches. DeepSynth's loop
runs three ways: all options off (metrics logged at the default interval), expert and gate
gradient dropout on, and Bi-Drop with 2 passes. Steady-state steps/s (first steps excluded)
and the ratios to the hand-written loop are printed.
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

from deepsynth.config.training import training_config
from deepsynth.models.components import freeze_vision
from deepsynth.models.adapters import unfreeze_decoder
from deepsynth.training import setup
from deepsynth.training.data import Collator, pixel_values
from deepsynth.training.loop import train

WARMUP = 5
BASE = {"preset": "quick_test", "peft": "full", "batch_size": 4,
        "gradient_accumulation_steps": 1, "learning_rate": 1e-4, "mixed_precision": "no",
        "eval_steps": 100_000, "save_steps": 100_000, "log_steps": 10}


def make_dataset(folder: Path) -> Path:
    out = folder / "dataset"
    subprocess.run([sys.executable, "-m", "deepsynth", "generate", "--source",
                    "builtin:scitldr", "--out", str(out), "--max-samples", "64", "--split",
                    "train", "--page-size", "256x256", "--font-size", "12", "--margin", "8",
                    "--workers", "1"], check=True, capture_output=True)
    return out


def hand_written(dataset: Path, root: Path, steps: int) -> float:
    config = training_config({**BASE, "dataset": str(dataset), "out": str(root / "hand")})
    loaded = setup.load_base_model(config, root)
    freeze_vision(loaded.model, loaded.family)
    unfreeze_decoder(loaded.model, loaded.family)
    data = setup.build_data(config, loaded).train
    loader = torch.utils.data.DataLoader(data, batch_size=4, shuffle=True,
                                         collate_fn=Collator(loaded.tokenizer.pad_token_id))
    model = loaded.model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    done, started = 0, None
    while done < steps:
        for batch in loader:
            loss = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                         labels=batch["labels"],
                         pixel_values=pixel_values(batch["pages"], torch.float32)).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            done += 1
            if done == WARMUP:
                started = time.perf_counter()
            if done == steps:
                break
    return (steps - WARMUP) / (time.perf_counter() - started)


def deepsynth_loop(dataset: Path, root: Path, steps: int, name: str, **options) -> float:
    times: dict[int, float] = {}

    def progress(report) -> None:
        times[report.done] = time.perf_counter()

    config = training_config({**BASE, **options, "dataset": str(dataset),
                              "out": str(root / name), "max_steps": steps})
    train(config, progress=progress, root=root, echo=lambda _: None)
    return (steps - WARMUP) / (times[steps] - times[WARMUP])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        dataset = make_dataset(root)
        hand = hand_written(dataset, root, args.steps)
        runs = {
            "options_off": deepsynth_loop(dataset, root, args.steps, "off"),
            "expert_and_gate_dropout": deepsynth_loop(
                dataset, root, args.steps, "dropout", expert_dropout_rate=0.2,
                gate_dropout_rate=0.1),
            "bidrop_2_passes": deepsynth_loop(dataset, root, args.steps, "bidrop",
                                              bidrop_passes=2, hidden_dropout=0.1),
        }
    report = {"steps": args.steps, "warmup_steps_excluded": WARMUP,
              "torch_threads": torch.get_num_threads(),
              "hand_written_steps_per_second": round(hand, 2),
              **{f"{k}_steps_per_second": round(v, 2) for k, v in runs.items()},
              **{f"{k}_ratio": round(v / hand, 3) for k, v in runs.items()}}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
