"""Run under ``torchrun --nproc_per_node 2``: the real training loop for 3 steps, then each
rank saves its replica's trainable weights and the ids of its share of epoch 0 to
``OUT/rank{R}.pt`` (used by tests/test_training_runs.py)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

from deepsynth.config import validate
from deepsynth.config.training import training_config
from deepsynth.progress import never_stop, no_progress
from deepsynth.training.loop import Trainer


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("dataset", "run_dir", "root", "out"):  # positional: torchrun would
        parser.add_argument(name)                        # take --run for its --run-path
    args = parser.parse_args()
    config = training_config({
        "dataset": args.dataset, "out": args.run_dir, "preset": "quick_test", "peft": "full",
        "mixed_precision": "no", "max_steps": 3, "save_steps": 3, "eval_steps": 3,
        "eval_samples": 2, "max_new_tokens": 4})
    validate(config)
    trainer = Trainer(config, no_progress, never_stop, Path(args.root), print)
    result = trainer.run()
    accelerator = trainer.accelerator
    model = accelerator.unwrap_model(trainer.model)
    weights = {n: p.detach().cpu().clone() for n, p in model.named_parameters()
               if p.requires_grad}
    trainer.loader.set_epoch(0)
    epoch0_ids = [i for batch in trainer.loader for i in batch["ids"]]  # this rank's share
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    launcher_rank = int(os.environ["RANK"])  # named by torchrun's rank: never overwritten
    torch.save({"launcher_rank": launcher_rank, "launcher_world_size":
                int(os.environ["WORLD_SIZE"]), "rank": accelerator.process_index,
                "world_size": accelerator.num_processes, "status": result.status,
                "step": result.step, "epoch0_ids": epoch0_ids, "weights": weights},
               out / f"rank{launcher_rank}.pt")
    accelerator.wait_for_everyone()


if __name__ == "__main__":
    main()
