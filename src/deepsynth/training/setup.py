"""Builders: everything the training loop needs, made from a TrainingConfig.

Only these functions read the config object; the pieces they build take plain parameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from deepsynth.config.training import LORA_PRESETS, TrainingConfig
from deepsynth.config.training_checks import sequence_refusal
from deepsynth.errors import ConfigError, DatasetDamaged, DeepSynthError
from deepsynth.models.adapters import apply_adapters, peft_config, unfreeze_decoder
from deepsynth.models.components import freeze_vision
from deepsynth.models.registry import LoadedModel, load_model
from deepsynth.training.augment import Augmenter
from deepsynth.training.data import (
    ExampleEncoder,
    PageDataset,
    SplitRows,
    load_split,
    read_page,
)
from deepsynth.training.hooks import AdaLoraBudget, StepHook
from deepsynth.training.moe import RouterMonitor
from deepsynth.training.pages import PageFormat
from deepsynth.training.regularizers import REGULARIZERS


@dataclass
class TrainingData:
    train: torch.utils.data.Dataset
    probe: torch.utils.data.Dataset | None
    eval_split: str | None
    skipped: dict  # rows left out and why, for the run's summary
    notes: tuple[str, ...] = ()  # what reading the data did, for the run's log


def uses_4bit(config: TrainingConfig) -> bool:
    return config.adapter.peft == "qlora" or config.adapter.lora_preset == "qlora_4bit"


HALF_PRECISION = {"bf16": torch.bfloat16, "fp16": torch.float16}


def base_dtype(config: TrainingConfig) -> torch.dtype:
    """The dtype the model is loaded in. Adapters (any PEFT method but full): the run's half
    precision, since the base never trains and autocast computes in it anyway (half the
    memory; the adapters stay float32, see make_trainable). Full fine-tuning: float32 master
    weights under autocast. QLoRA: float32 around its 4-bit layers, as bitsandbytes expects."""
    if config.adapter.peft == "full" or uses_4bit(config):
        return torch.float32
    return HALF_PRECISION.get(config.schedule.mixed_precision, torch.float32)


def load_base_model(config: TrainingConfig, root: Path | None) -> LoadedModel:
    chat = config.task.kind == "chat"
    loaded = load_model(config.task.model, root=root, dtype=base_dtype(config),
                        trust_remote_code=config.task.trust_remote_code,
                        attention_dropout=config.schedule.attention_dropout,
                        quantize_4bit=uses_4bit(config), hub_ids=chat,
                        sliding_window=None if chat else config.task.sliding_window)
    if chat != (loaded.family == "causal_lm"):
        raise ConfigError("model", f"{config.task.model} is a {loaded.family} model; "
                          f"trainer_type {config.task.trainer_type} needs "
                          f"{'a causal LM' if chat else 'a DeepSeek-OCR model'}")
    return loaded


def make_trainable(loaded: LoadedModel, config: TrainingConfig, total_steps: int):
    """The model with its vision side frozen and its decoder trainable (adapters or full)."""
    if loaded.family != "causal_lm":  # a causal LM has no vision side
        freeze_vision(loaded.model, loaded.family)
    if config.adapter.peft == "full":
        unfreeze_decoder(loaded.model, loaded.family)
        model = loaded.model
    else:
        adapter = config.adapter
        preset = LORA_PRESETS[config.adapter.lora_preset]
        method = "lora" if config.adapter.peft == "qlora" else config.adapter.peft
        if uses_4bit(config):
            from peft import prepare_model_for_kbit_training

            loaded.model = prepare_model_for_kbit_training(
                loaded.model, use_gradient_checkpointing=config.schedule.gradient_checkpointing)
        model = apply_adapters(loaded.model, peft_config(
            method, preset["modules"], preset["parameters"], adapter.lora_r, adapter.lora_alpha,
            adapter.lora_dropout, total_steps, loaded.family), loaded.family)
    if config.schedule.gradient_checkpointing:
        loaded.model.gradient_checkpointing_enable()
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise DeepSynthError("nothing to train: every parameter is frozen")
    for parameter in trainable:  # the optimizer steps float32 weights, whatever the base's dtype
        if parameter.dtype in HALF_PRECISION.values():
            parameter.data = parameter.data.float()
    return model


def build_data(config: TrainingConfig, loaded: LoadedModel) -> TrainingData:
    if config.task.kind == "chat":
        return build_chat_data(config, loaded)
    task = config.task
    encoder = ExampleEncoder(loaded.tokenizer, loaded.image_token_id,
                             loaded.image_tokens_per_page, task.prompt, task.max_length)
    train_rows = load_split(task.dataset, task.train_split, task.max_pages)
    if not train_rows.indices:
        raise DeepSynthError(
            f"no training rows in {task.dataset} split {task.train_split!r} with at most "
            f"{task.max_pages} pages ({train_rows.skipped_too_many_pages} longer rows "
            f"skipped); raise --max-pages, or render the dataset with a smaller --font-size "
            f"and --margin")
    pages = PageFormat(loaded.family, loaded.image_size, task.image_mode)
    check_sequence_fits(loaded, pages, train_rows, task.max_length)
    augmenter = Augmenter(config.schedule.seed) if config.schedule.augment else None
    train = PageDataset(train_rows, encoder, pages, augmenter)
    eval_split, probe_rows = _eval_rows(config)
    probe = PageDataset(probe_rows, encoder, pages,
                        limit=config.evaluation.eval_samples) if probe_rows is not None else None
    return TrainingData(train, probe, eval_split,
                        {"rows_skipped_too_many_pages": train_rows.skipped_too_many_pages})


def check_sequence_fits(loaded: LoadedModel, pages: PageFormat, rows: SplitRows,
                        max_length: int) -> None:
    """The longest training sequence, [bos] + its pages' image tokens + max_length text
    tokens, within the decoder's positions; else refused naming ``image_mode`` (crops) or
    ``max_pages`` (``sequence_refusal``, which the submit checks use too). Pages are measured
    on the first one (a DeepSynth dataset has one size)."""
    first = rows.table[rows.indices[0]]["images"][0]["bytes"]
    width, height = read_page(first).size
    counts = rows.table["num_pages"]
    refusal = sequence_refusal(
        pages.family, pages.image_size, pages.mode, width, height,
        max(counts[i] for i in rows.indices), max_length,
        loaded.model.config.text_config.max_position_embeddings)
    if refusal is not None:
        raise refusal


def build_chat_data(config: TrainingConfig, loaded: LoadedModel) -> TrainingData:
    """Conversations of the chat file (``dataset``, already a local path), labeled on
    assistant tokens; the probe is the first ``eval_samples`` of ``eval_dataset``."""
    from deepsynth.chat.data import load_chat
    from deepsynth.chat.template import ChatEncoder

    chat, evaluation = config.chat, config.evaluation
    encoder = ChatEncoder(loaded.tokenizer, chat.chat_template, chat.chat_reasoning,
                          chat.chat_train_on, config.task.max_length)
    train, report, untrained = load_chat(Path(config.task.dataset), encoder,
                                         chat.skip_invalid_lines)
    probe = None
    if evaluation.eval_dataset:
        probe, _, _ = load_chat(Path(evaluation.eval_dataset), encoder, chat.skip_invalid_lines,
                                limit=evaluation.eval_samples)
    return TrainingData(train, probe, "eval_dataset" if probe else None, {
        "lines_skipped_invalid": len(report.invalid_lines),
        "invalid_lines": report.invalid_lines[:100],
        "conversations_without_trained_tokens": untrained,
        "chat_format": report.format_dict(), "conversion": report.conversion()},
        _conversion_notes(config.task.dataset, report))


def _conversion_notes(dataset: str, report) -> tuple[str, ...]:
    counts = report.conversion()
    if counts is None:
        return ()
    reasons = "".join(f", {rule} {n}" for rule, n in counts["refused_by_reason"].items())
    note = (f"{dataset}: {report.format_label()}, converted: {counts['records']} records "
            f"read, {counts['converted']} converted, {counts['refused']} refused{reasons}")
    return (note,)


def _eval_rows(config: TrainingConfig) -> tuple[str | None, SplitRows | None]:
    chosen = config.evaluation.eval_split
    for split in [chosen] if chosen else ["validation", "test"]:
        try:
            rows = load_split(config.task.dataset, split, config.task.max_pages)
        except DatasetDamaged:
            raise  # the split exists; hiding it would blame a missing split
        except DeepSynthError:
            if chosen:
                raise
            continue
        return split, rows
    return None, None


def total_steps(config: TrainingConfig, batches_per_epoch: int) -> int:
    if config.schedule.max_steps:
        return config.schedule.max_steps
    per_epoch = math.ceil(batches_per_epoch / config.schedule.gradient_accumulation_steps)
    return max(1, math.ceil(per_epoch * config.schedule.num_epochs))


def build_optimizer(model, config: TrainingConfig) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            (no_decay if parameter.ndim < 2 or "norm" in name else decay).append(parameter)
    return torch.optim.AdamW([{"params": decay, "weight_decay": config.schedule.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}],
                             lr=config.schedule.learning_rate)


def build_scheduler(optimizer, config: TrainingConfig, steps: int):
    from transformers import get_scheduler

    schedule = config.schedule
    warmup = schedule.warmup_steps if schedule.warmup_steps is not None else round(
        schedule.warmup_ratio * steps)
    name = "constant_with_warmup" if schedule.scheduler == "constant" else schedule.scheduler
    return get_scheduler(name, optimizer, num_warmup_steps=warmup, num_training_steps=steps)


def build_hooks(config: TrainingConfig, model, monitor: RouterMonitor) -> list[StepHook]:
    """The step's hooks, in build order: the active regularizers, then AdaLoRA's budget."""
    hooks = [r.build(config, model, monitor) for r in REGULARIZERS if r.active(config.moe)]
    if config.adapter.peft == "adalora":
        hooks.append(AdaLoraBudget(model))
    return hooks
