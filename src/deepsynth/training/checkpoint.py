"""Checkpoints that resume exactly: trainable weights, optimizer, scheduler, RNG states, the
hooks' states, data position and step, with a format version. Written to a temp folder and
renamed into place. Which folder, and the names of the files in it, are the run folder's
(:mod:`deepsynth.training.run_folder`)."""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from deepsynth.errors import DeepSynthError
from deepsynth.training.run_folder import (
    CHECKPOINT_STATE_NAME, CHECKPOINT_TRAINING_STATE_NAME, CHECKPOINT_WEIGHTS_NAME,
)

FORMAT_VERSION = 1


@dataclass
class TrainerState:
    step: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0  # micro-batches of this epoch already consumed
    best_metric: float | None = None
    evals_without_improvement: int = 0
    format_version: int = FORMAT_VERSION
    extra: dict = field(default_factory=dict)


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(folder: Path, model, optimizer, scheduler, state: TrainerState,
                    extra_rng: dict) -> Path:
    """``extra_rng``: the loop's own states (``{"hooks": {name: state}}``)."""
    folder = Path(folder)
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    weights = {n: p.detach().cpu().contiguous() for n, p in model.named_parameters()
               if p.requires_grad}
    save_file(weights, str(tmp / CHECKPOINT_WEIGHTS_NAME))
    blob = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "rng": rng_state(), "extra_rng": extra_rng}
    torch.save(blob, tmp / CHECKPOINT_TRAINING_STATE_NAME)
    (tmp / CHECKPOINT_STATE_NAME).write_text(json.dumps(asdict(state), indent=2))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder


def load_checkpoint(folder: Path, model, optimizer, scheduler) -> tuple[TrainerState, dict]:
    folder = Path(folder)
    try:
        state = TrainerState(**json.loads((folder / CHECKPOINT_STATE_NAME).read_text()))
    except (OSError, json.JSONDecodeError, TypeError) as exc:
        raise DeepSynthError(f"{folder} is not a readable checkpoint ({exc})") from None
    if state.format_version != FORMAT_VERSION:
        raise DeepSynthError(f"checkpoint {folder} has format {state.format_version}; this "
                             f"deepsynth reads {FORMAT_VERSION}")
    weights = load_file(str(folder / CHECKPOINT_WEIGHTS_NAME))
    parameters = dict(model.named_parameters())
    trainable = {n for n, p in parameters.items() if p.requires_grad}
    if set(weights) != trainable:
        saved = state.extra.get("setup", {})
        example = sorted(set(weights) ^ trainable)[0]
        raise DeepSynthError(
            f"checkpoint {folder} was trained with a different setup ({_describe(saved)}) "
            f"than this run's; resume with the same options (first differing tensor: "
            f"{example})")
    with torch.no_grad():
        for name, tensor in weights.items():
            parameters[name].copy_(tensor)
    blob = torch.load(folder / CHECKPOINT_TRAINING_STATE_NAME, weights_only=False)
    optimizer.load_state_dict(blob["optimizer"])
    scheduler.load_state_dict(blob["scheduler"])
    restore_rng(blob["rng"])
    return state, blob["extra_rng"]


def _describe(setup: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in setup.items()) or "unknown"
