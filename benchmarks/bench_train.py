"""Training-step speed: DeepSynth's loop against a minimal hand-written PyTorch loop.

    .venv/bin/python benchmarks/bench_train.py [--steps 60] [--repeats 3]

Tiny DeepSeek-OCR-2, batch 4, 256 px pages, float32, decoder fully trainable, vision frozen.
The hand-written loop is forward, backward, AdamW step over the same batches. DeepSynth's loop
runs three ways: all options off (metrics logged at the default interval), expert and gate
gradient dropout on, and Bi-Drop with 2 passes (hidden dropout 0.1). Steady-state steps/s
(first steps excluded), as medians over interleaved rounds, and the ratios to the
hand-written loop are printed.
"""

from __future__ import annotations

import argparse
import json
import statistics
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
from deepsynth.training.loop import EpochOrder, train

WARMUP = 5
BASE = {"preset": "quick_test", "peft": "full", "batch_size": 4,
        "gradient_accumulation_steps": 1, "learning_rate": 1e-4, "mixed_precision": "no",
        "eval_steps": 100_000, "save_steps": 100_000, "log_steps": 10, "max_grad_norm": 0.0}


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
    order = EpochOrder(len(data), config.schedule.seed)  # the same batches, in the same order
    loader = torch.utils.data.DataLoader(data, batch_size=4, sampler=order,
                                         collate_fn=Collator(loaded.tokenizer.pad_token_id))
    model = loaded.model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    done, started, epoch = 0, None, 0
    while done < steps:
        order.set_epoch(epoch)
        epoch += 1
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
    parser.add_argument("--repeats", type=int, default=3, help="rounds; medians are reported")
    args = parser.parse_args()
    torch.manual_seed(0)
    runs = {
        "hand_written": lambda ds, root, n: hand_written(ds, root, args.steps),
        "options_off": lambda ds, root, n: deepsynth_loop(ds, root, args.steps, f"off{n}"),
        "expert_and_gate_dropout": lambda ds, root, n: deepsynth_loop(
            ds, root, args.steps, f"dropout{n}", expert_dropout_rate=0.2,
            gate_dropout_rate=0.1),
        "bidrop_2_passes": lambda ds, root, n: deepsynth_loop(
            ds, root, args.steps, f"bidrop{n}", bidrop_passes=2, hidden_dropout=0.1),
    }
    rates: dict[str, list[float]] = {name: [] for name in runs}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        dataset = make_dataset(root)
        for round_ in range(args.repeats):  # interleaved, so machine noise hits all alike
            for name, run in runs.items():
                rates[name].append(run(dataset, root, round_))
    median = {name: statistics.median(values) for name, values in rates.items()}
    hand = median["hand_written"]
    report = {"steps": args.steps, "warmup_steps_excluded": WARMUP, "repeats": args.repeats,
              "torch_threads": torch.get_num_threads(),
              **{f"{k}_steps_per_second": round(v, 2) for k, v in median.items()},
              **{f"{k}_ratio": round(v / hand, 3) for k, v in median.items()
                 if k != "hand_written"},
              "all_rounds_steps_per_second": {k: [round(x, 2) for x in v]
                                              for k, v in rates.items()}}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
