"""Builders: everything the training loop needs, made from a TrainingConfig.

Only these functions read the config object; the pieces they build take plain parameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from deepsynth.config.training import LORA_PRESETS, TrainingConfig, lora_dropout
from deepsynth.errors import ConfigError, DeepSynthError
from deepsynth.models.adapters import apply_adapters, peft_config, unfreeze_decoder
from deepsynth.models.components import freeze_vision
from deepsynth.models.registry import LoadedModel, load_model
from deepsynth.training.augment import Augmenter
from deepsynth.training.data import ExampleEncoder, PageDataset, SplitRows, load_split
from deepsynth.training.moe import RouterMonitor, expert_slices, router_parameters
from deepsynth.training.regularizers import (
    BiDrop, ExpertGradientDropout, GateGradientDropout, RouterLosses, StepHook,
)


@dataclass
class TrainingData:
    train: torch.utils.data.Dataset
    probe: torch.utils.data.Dataset | None
    eval_split: str | None
    skipped: dict  # rows left out and why, for metrics.json


def lora_values(config: TrainingConfig) -> tuple[int, int, float]:
    preset = LORA_PRESETS[config.lora_preset]
    return config.lora_r or preset["r"], config.lora_alpha or preset["alpha"], \
        lora_dropout(config)


def uses_4bit(config: TrainingConfig) -> bool:
    return config.peft == "qlora" or config.lora_preset == "qlora_4bit"


def load_base_model(config: TrainingConfig, root: Path | None) -> LoadedModel:
    generic = config.trainer_type == "generic"
    loaded = load_model(config.model, root=root, trust_remote_code=config.trust_remote_code,
                        attention_dropout=config.attention_dropout,
                        quantize_4bit=uses_4bit(config), hub_ids=generic)
    if generic != (loaded.family == "causal_lm"):
        raise ConfigError("model", f"{config.model} is a {loaded.family} model; trainer_type "
                          f"{config.trainer_type} needs "
                          f"{'a causal LM' if generic else 'a DeepSeek-OCR model'}")
    return loaded


def make_trainable(loaded: LoadedModel, config: TrainingConfig, total_steps: int):
    """The model with its vision side frozen and its decoder trainable (adapters or full)."""
    if loaded.family != "causal_lm":  # a causal LM has no vision side
        freeze_vision(loaded.model, loaded.family)
    if config.peft == "full":
        unfreeze_decoder(loaded.model, loaded.family)
        model = loaded.model
    else:
        r, alpha, dropout = lora_values(config)
        preset = LORA_PRESETS[config.lora_preset]
        method = "lora" if config.peft == "qlora" else config.peft
        if uses_4bit(config):
            from peft import prepare_model_for_kbit_training

            loaded.model = prepare_model_for_kbit_training(
                loaded.model, use_gradient_checkpointing=config.gradient_checkpointing)
        model = apply_adapters(loaded.model, peft_config(
            method, preset["modules"], preset["parameters"], r, alpha, dropout, total_steps,
            loaded.family))
    if config.gradient_checkpointing:
        loaded.model.gradient_checkpointing_enable()
    if not any(p.requires_grad for p in model.parameters()):
        raise DeepSynthError("nothing to train: every parameter is frozen")
    return model


def build_data(config: TrainingConfig, loaded: LoadedModel) -> TrainingData:
    if config.trainer_type == "generic":
        return build_chat_data(config, loaded)
    encoder = ExampleEncoder(loaded.tokenizer, loaded.image_token_id,
                             loaded.image_tokens_per_page, config.prompt, config.max_length)
    train_rows = load_split(config.dataset, config.train_split, config.max_pages)
    if not train_rows.indices:
        raise DeepSynthError(
            f"no training rows in {config.dataset} split {config.train_split!r} with at most "
            f"{config.max_pages} pages ({train_rows.skipped_too_many_pages} longer rows "
            f"skipped); raise --max-pages, or render the dataset with a smaller --font-size "
            f"and --margin")
    augmenter = Augmenter(config.seed) if config.augment else None
    train = PageDataset(train_rows, encoder, loaded.image_size, augmenter)
    eval_split, probe_rows = _eval_rows(config)
    probe = PageDataset(probe_rows, encoder, loaded.image_size, limit=config.eval_samples) \
        if probe_rows is not None else None
    return TrainingData(train, probe, eval_split,
                        {"rows_skipped_too_many_pages": train_rows.skipped_too_many_pages})


def build_chat_data(config: TrainingConfig, loaded: LoadedModel) -> TrainingData:
    """Conversations of the chat file (``config.dataset``, already a local path), labeled on
    assistant tokens; the probe is the first ``eval_samples`` of ``eval_dataset``."""
    from deepsynth.chat.data import load_chat
    from deepsynth.chat.template import ChatEncoder

    encoder = ChatEncoder(loaded.tokenizer, config.chat_template, config.chat_reasoning,
                          config.chat_train_on, config.max_length)
    train, report, untrained = load_chat(Path(config.dataset), encoder,
                                         config.skip_invalid_lines)
    probe = None
    if config.eval_dataset:
        probe, _, _ = load_chat(Path(config.eval_dataset), encoder, config.skip_invalid_lines,
                                limit=config.eval_samples)
    return TrainingData(train, probe, "eval_dataset" if probe else None, {
        "lines_skipped_invalid": len(report.invalid_lines),
        "invalid_lines": report.invalid_lines[:100],
        "conversations_without_trained_tokens": untrained})


def _eval_rows(config: TrainingConfig) -> tuple[str | None, SplitRows | None]:
    candidates = [config.eval_split] if config.eval_split else ["validation", "test"]
    for split in candidates:
        try:
            rows = load_split(config.dataset, split, config.max_pages)
        except DeepSynthError:
            if config.eval_split:
                raise
            continue
        return split, rows
    return None, None


def total_steps(config: TrainingConfig, batches_per_epoch: int) -> int:
    if config.max_steps:
        return config.max_steps
    per_epoch = math.ceil(batches_per_epoch / config.gradient_accumulation_steps)
    return max(1, math.ceil(per_epoch * config.num_epochs))


def build_optimizer(model, config: TrainingConfig) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            (no_decay if parameter.ndim < 2 or "norm" in name else decay).append(parameter)
    return torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}],
                             lr=config.learning_rate)


def build_scheduler(optimizer, config: TrainingConfig, steps: int):
    from transformers import get_scheduler

    warmup = config.warmup_steps if config.warmup_steps is not None else round(
        config.warmup_ratio * steps)
    name = "constant_with_warmup" if config.scheduler == "constant" else config.scheduler
    return get_scheduler(name, optimizer, num_warmup_steps=warmup, num_training_steps=steps)


def build_hooks(config: TrainingConfig, model, monitor: RouterMonitor) -> list[StepHook]:
    hooks: list[StepHook] = []
    if config.expert_dropout_rate:
        layers = expert_slices(model)
        if not layers:
            raise ConfigError("expert_dropout_rate", "no routed expert weights are trainable")
        hooks.append(ExpertGradientDropout(layers, config.expert_dropout_rate,
                                           config.expert_dropout_min_keep, config.seed))
    if config.gate_dropout_rate:
        parameters = router_parameters(model)
        if not parameters:
            raise ConfigError("gate_dropout_rate", "no router weights are trainable")
        hooks.append(GateGradientDropout(parameters, config.gate_dropout_rate, config.seed))
    if config.aux_loss_coef or config.z_loss_coef:
        monitor.keep_outputs = True
        hooks.append(RouterLosses(monitor, config.aux_loss_coef, config.z_loss_coef))
    if config.peft == "adalora":
        hooks.append(AdaLoraBudget(model))
    return hooks


def build_bidrop(config: TrainingConfig, model) -> BiDrop:
    trainable = [p for p in model.parameters() if p.requires_grad]
    return BiDrop(config.bidrop_passes, config.bidrop_agreement, trainable)


class AdaLoraBudget:
    """AdaLoRA re-allocates ranks after every optimizer step (it needs the gradients)."""

    def __init__(self, model):
        self.model = model
        self.step = 0

    def extra_loss(self, token_mask):
        return None

    def before_optimizer_step(self, optimizer):
        """Ranks are updated after the step."""

    def after_optimizer_step(self, optimizer):
        self.step += 1
        self.model.base_model.update_and_allocate(self.step)
