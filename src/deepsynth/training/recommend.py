"""From a dataset size to a LoRA preset and a training configuration, with estimates.

The buckets follow the LoRA guide: under 10 samples adapt little (attention + down_proj at a
small rank) and repeat the data often; 10-50 adapt attention and the MLPs; 50 and more can
afford the routed experts and the router.
"""

from __future__ import annotations

import math

from deepsynth.config.training import LORA_PRESETS

BUCKETS = (  # (fewer than N samples, preset, training values)
    (10, "tiny_data", {"num_epochs": 10, "batch_size": 1, "gradient_accumulation_steps": 4,
                       "learning_rate": 1e-4}),
    (50, "balanced", {"num_epochs": 5, "batch_size": 2, "gradient_accumulation_steps": 4,
                      "learning_rate": 1e-4}),
    (None, "high_capacity_moe", {"num_epochs": 3, "batch_size": 2,
                                 "gradient_accumulation_steps": 8, "learning_rate": 5e-5}),
)
MIN_UPDATES = 20


def recommend_lora(num_samples: int) -> dict:
    """The recommended ``lora_preset`` and options for ``num_samples`` training rows, with the
    optimizer steps and effective batch they imply."""
    if num_samples < 1:
        raise ValueError("num_samples must be at least 1")
    preset, values = next((p, v) for limit, p, v in BUCKETS
                          if limit is None or num_samples < limit)
    per_epoch = math.ceil(math.ceil(num_samples / values["batch_size"])
                          / values["gradient_accumulation_steps"])
    steps = math.ceil(per_epoch * values["num_epochs"])
    notes = []
    if steps < MIN_UPDATES:
        notes.append(f"only {steps} optimizer steps: expect the adapters to learn little; "
                     f"more data or more epochs help")
    return {
        "num_samples": num_samples, "lora_preset": preset,
        "description": LORA_PRESETS[preset]["help"],
        "config": {"peft": "lora", "lora_preset": preset, **values},
        "estimates": {"optimizer_steps": steps, "steps_per_epoch": per_epoch,
                      "effective_batch_size": values["batch_size"]
                      * values["gradient_accumulation_steps"],
                      "samples_seen": math.ceil(num_samples * values["num_epochs"]),
                      "updates_per_sample": values["num_epochs"]},
        "notes": notes,
    }
