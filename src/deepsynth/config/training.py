"""Configuration of fine-tuning: a tree of sections, one ``option()`` per field, and the one
function that resolves a request into a complete config.

Outside, the config is flat: every field name is unique across sections, so CLI flags
(``--kebab-case``), REST bodies, the JSON Schema, the UI form and the run's config file
list fields by name (:func:`deepsynth.config.spec.to_dict` / :func:`training_config`).
Inside, code reads ``config.schedule.learning_rate``. Presets live in
:mod:`deepsynth.config.training_presets`, refusals in :mod:`deepsynth.config.training_checks`.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

from deepsynth.config.spec import flat_fields, from_dict, hub_repo_id, option, section, to_dict
from deepsynth.config.training_checks import active_regularizers, check_conflicts
from deepsynth.config.training_presets import (
    ATTENTION, CHAT_DEFAULTS, CHAT_LORA_PRESETS, DEFAULT_PROMPT, EXPERTS, LORA_PRESETS, MLP,
    OCR_LORA_PRESETS, ROUTER, TASKS, TRAINER_TYPES, TRAINING_PRESETS, default_lora_dropout,
    task_kind,
)
from deepsynth.errors import ConfigError
from deepsynth.models.random_spec import check_model_spec
from deepsynth.render.tokens import IMAGE_MODES

__all__ = [
    "ATTENTION", "CHAT_DEFAULTS", "CHAT_LORA_PRESETS", "DEFAULT_PROMPT", "EXPERTS",
    "LORA_PRESETS", "MLP", "OCR_LORA_PRESETS", "ROUTER", "TASKS", "TRAINER_TYPES",
    "TRAINING_PRESETS", "AdapterConfig", "ChatConfig", "EvaluationConfig", "HubConfig",
    "MoeConfig", "ScheduleConfig", "TaskConfig", "TrainingConfig", "task_kind",
    "train_command", "train_options", "training_config",
]


@dataclass
class TaskConfig:
    """What is trained on what: the model, the data and the task."""

    dataset: str = option(help="a dataset folder made by deepsynth generate; with "
                          "trainer_type generic, a chat file (chat JSONL; ShareGPT, Alpaca "
                          "or a JSON array, converted) or hf:org/name")
    out: str = option(help="output folder for checkpoints, metrics and the final model")
    model: str = option("tiny-deepseek-ocr-2", check=check_model_spec, help=(
        "model preset, random:deepseek-ocr-2[?layers=N], random:deepseek-ocr[?layers=N] or "
        "random:unlimited-ocr[?layers=N] (the real architecture, random weights) or folder"))
    trainer_type: str = option("production", choices=TRAINER_TYPES, help=(
        "production: frozen encoder, MoE regularizers, evaluation, resume; deepsynth: frozen "
        "encoder, no MoE regularizers; generic: a causal LM on chat JSONL (docs/chat.md)"))
    preset: str | None = option(None, choices=tuple(TRAINING_PRESETS),
                                help="training preset; explicit options override it")
    trust_remote_code: bool = option(False, help=(
        "allow a chat trainer's Hub causal LM to run code from its repository (no DeepSeek-OCR "
        "model needs it)"))
    train_split: str = option("train", help="split to train on")
    max_length: int = option(512, min=8, max=32768,
                             help="text tokens (prompt + summary); image tokens never count")
    max_pages: int = option(4, min=1, max=64, help="skip (and count) longer documents")
    image_mode: str = option("global", choices=IMAGE_MODES, help=(
        "global: each page as one view at the model's image size (257 image tokens for "
        "DeepSeek-OCR-2, 273 for v1); crops: also local crops, as the model's processor does "
        "by default, for pages larger than one tile (a 1024x1024 page: 833 and 693)"))
    prompt: str = option(DEFAULT_PROMPT, max_chars=2000,
                         help="instruction placed after the page images")
    sliding_window: int | None = option(None, min=1, max=32768, help=(
        "Unlimited-OCR only: generated tokens attend to every page and prompt token and to "
        "the last N generated ones (default: the model's, 128); acts in generation "
        "(evaluation, summarize), not in training"))

    @property
    def kind(self) -> str:
        """The task, ``ocr`` or ``chat``: what code branches on (never on trainer_type)."""
        return task_kind(self.trainer_type)


@dataclass
class AdapterConfig:
    """How the decoder trains: adapters (and their size) or full fine-tuning."""

    peft: str = option("lora", choices=("lora", "qlora", "dora", "adalora", "full"),
                       help="adapter method, or full fine-tuning of the decoder")
    lora_preset: str = option("balanced", choices=tuple(LORA_PRESETS),
                              help="which modules the adapters reach")
    lora_r: int | None = option(None, min=1, max=512, help="adapter rank (default: preset's)")
    lora_alpha: int | None = option(None, min=1, max=1024, help="adapter alpha")
    lora_dropout: float | None = option(None, min=0.0, max=0.5, help="dropout inside the "
                                        "adapters (default 0.05; 0 for presets that adapt "
                                        "the router or experts, which PEFT requires)")


@dataclass
class ScheduleConfig:
    """The optimization: steps, batches, learning rate, precision, dropout, checkpoints."""

    max_steps: int | None = option(None, min=1, help="optimizer steps (overrides num_epochs)")
    num_epochs: float = option(1.0, min=0.01, max=1000, help="passes over the training split")
    batch_size: int = option(2, min=1, max=512, help="examples per micro-batch")
    gradient_accumulation_steps: int = option(8, min=1, max=1024,
                                              help="micro-batches per optimizer step")
    learning_rate: float = option(5e-5, min=1e-8, max=1.0, help="peak learning rate")
    weight_decay: float = option(0.01, min=0.0, max=1.0, help="AdamW weight decay")
    warmup_ratio: float = option(0.1, min=0.0, max=0.5, help="warmup share of the steps")
    warmup_steps: int | None = option(None, min=0, help="warmup steps (overrides the ratio)")
    scheduler: str = option("cosine", choices=("cosine", "linear", "constant"),
                            help="learning-rate schedule (transformers)")
    max_grad_norm: float = option(1.0, min=0.0, max=1000.0, help="gradient clipping (0: off)")
    mixed_precision: str = option("bf16", choices=("no", "fp16", "bf16"),
                                  help="autocast precision")
    seed: int = option(42, min=0, max=2**32 - 1, help="random seed")
    gradient_checkpointing: bool = option(False, help="trade compute for activation memory")
    attention_dropout: float = option(0.0, min=0.0, max=0.5,
                                      help="dropout in the decoder's attention while training "
                                      "(slow on CPU: prefer hidden_dropout)")
    hidden_dropout: float = option(0.0, min=0.0, max=0.5, help="dropout on the decoder's "
                                   "attention and MLP outputs while training")
    loader_workers: int = option(0, min=0, max=64, help="data loader worker processes")
    augment: bool = option(False, help="legibility-preserving augmentation (rotation, "
                           "perspective, brightness/contrast, blur, noise)")
    save_steps: int = option(100, min=1, help="checkpoint every N steps")
    log_steps: int = option(10, min=1, help="write metrics every N steps")
    keep_last: int = option(3, min=1, max=1000, help="checkpoints kept")
    resume_from_checkpoint: str | None = option(None, help="a checkpoint folder, or 'latest' "
                                                "(the newest in --out)")


@dataclass
class MoeConfig:
    """MoE regularizers (each one a hook, see deepsynth.training.regularizers)."""

    expert_dropout_rate: float = option(
        0.0, min=0.0, max=1.0, help="share of routed experts whose gradients drop",
        guide={"recommended": "0.05-0.2", "what": "each step, the gradients of a random share "
               "of each layer's routed experts are zeroed, so no expert over-fits a small "
               "dataset", "cost": "almost free (one mask per layer per step)"})
    expert_dropout_min_keep: int = option(
        1, min=1, max=8, help="experts always kept per layer",
        guide={"recommended": "1-2", "what": "the fewest experts whose gradients survive "
               "expert dropout in a layer", "cost": "none"})
    gate_dropout_rate: float = option(
        0.0, min=0.0, max=0.95, help="share of router gradient entries dropped",
        guide={"recommended": "0.05-0.1", "what": "drops part of the router's gradient so "
               "routing does not collapse onto a few experts", "cost": "almost free"})
    bidrop_passes: int = option(
        1, min=1, max=5, help="forward/backward passes per batch",
        guide={"recommended": "1 (off) or 2", "what": "Bi-Drop: several dropout passes per "
               "batch, averaged, for a steadier update on small data (needs dropout)",
               "cost": "each pass is a full forward and backward: 2 passes = 2x step time"})
    bidrop_agreement: bool = option(False, help="update only parameters whose gradients agree "
                                    "in sign across the passes (the Bi-Drop paper's rule)")
    aux_loss_coef: float = option(0.0, min=0.0, max=1.0, help="router load-balancing loss")
    z_loss_coef: float = option(0.0, min=0.0, max=1.0, help="router z-loss")


@dataclass
class EvaluationConfig:
    """Evaluation during training and early stopping."""

    eval_steps: int = option(100, min=1, help="evaluate the probe subset every N steps")
    eval_samples: int = option(16, min=1, max=100_000, help="size of the evaluation probe")
    early_stopping_patience: int | None = option(None, min=1, help="stop after N evaluations "
                                                 "without improvement")
    early_stopping_metric: str = option("eval_loss", choices=("eval_loss", "rouge1", "rouge2",
                                                              "rougeL"), help="metric watched")
    num_beams: int = option(1, min=1, max=16, help="beams when generating summaries")
    max_new_tokens: int | None = option(None, min=1, max=4096, help=(
        "summary length limit in tokens (default: 95th percentile of training summaries, at "
        "most max_length)"))
    eval_split: str | None = option(None, help="split to evaluate on (default: validation, "
                                    "else test)")

    eval_dataset: str | None = option(None, help="generic: a chat file to evaluate on, in "
                                      "any format dataset takes (default: no evaluation)")


@dataclass
class ChatConfig:
    """How the chat trainer reads conversations and labels them."""

    chat_template: str = option("auto", choices=("auto", "model", "builtin"), help=(
        "generic: the model's chat template (auto: when its tokenizer has one) or the "
        "built-in ChatML-style template"))
    chat_reasoning: str = option("render", choices=("render", "drop"),
                                 help="generic: render assistant reasoning, or drop it")
    chat_train_on: str = option("all_assistant", choices=("all_assistant", "last_assistant"),
                                help="generic: which assistant turns carry labels")
    skip_invalid_lines: bool = option(False, help="generic: train on the valid lines (or "
                                      "records) of a file with errors (the skipped ones are "
                                      "reported)")


@dataclass
class HubConfig:
    """Where the run is reported and published."""

    push_to_hub: bool = option(False, help="upload the final model (adapters merged) to "
                               "hub_model_id when training completes")
    hub_model_id: str | None = option(None, help="Hub repository for push_to_hub (ORG/NAME)",
                                      check=hub_repo_id)
    public: bool = option(False, help="create the Hub repository public, not private")
    report_to: str = option("none", choices=("none", "tensorboard", "wandb"),
                            help="experiment tracker")


@dataclass
class TrainingConfig:
    """A fine-tuning run, complete once resolved by :func:`training_config`."""

    task: TaskConfig = section(help="the model, the data and the task")
    adapter: AdapterConfig = section(AdapterConfig, help="adapters or full fine-tuning")
    schedule: ScheduleConfig = section(ScheduleConfig, help="the optimization")
    moe: MoeConfig = section(MoeConfig, help="MoE regularizers")
    evaluation: EvaluationConfig = section(EvaluationConfig, help="evaluation")
    chat: ChatConfig = section(ChatConfig, help="the chat trainer's reading of conversations")
    hub: HubConfig = section(HubConfig, help="tracking and publishing")

    def check(self) -> None:
        check_conflicts(self)

    @property
    def moe_regularized(self) -> bool:
        return bool(active_regularizers(self))


def _lora_filled(values: dict[str, Any]) -> dict[str, Any]:
    """The LoRA preset's rank, alpha and dropout for the fields no layer set."""
    name = values.get("lora_preset", flat_fields(TrainingConfig)["lora_preset"][0].default)
    preset = LORA_PRESETS.get(name) if isinstance(name, str) else None
    if preset is None:
        return {}  # an unknown preset: from_dict names it
    filled = {"lora_r": preset["r"], "lora_alpha": preset["alpha"],
              "lora_dropout": default_lora_dropout(name)}
    return {k: v for k, v in filled.items() if values.get(k) is None}


_LOOKED_UP = ("preset", "trainer_type", "peft", "lora_preset", "model")


def training_config(data: dict[str, Any], *, strict: bool = False) -> TrainingConfig:
    """Resolve a flat mapping (CLI flags given, REST body) into a complete config.

    Layers, lowest first: the dataclass defaults, the chat trainer's per-PEFT defaults, the
    training preset, the values given; then the LoRA preset's r/alpha/dropout wherever none
    of them set one. So the result records every value the run uses. ``strict``: ``data``
    is JSON (a REST body), see :func:`deepsynth.config.spec.from_dict`.
    """
    for name in _LOOKED_UP:  # used as keys before parsing: a list or object must not get there
        if data.get(name) is not None and not isinstance(data[name], str):
            raise ConfigError(name, f"must be a string, got {type(data[name]).__name__}")
    preset = data.get("preset")
    if preset is not None and preset not in TRAINING_PRESETS:
        raise ConfigError("preset", f"must be one of {', '.join(TRAINING_PRESETS)}; got "
                          f"{preset!r}")
    chosen = TRAINING_PRESETS.get(preset, {}) if preset else {}
    underneath = {}
    trainer_type = data.get("trainer_type")
    if isinstance(trainer_type, str) and task_kind(trainer_type) == "chat":
        peft = data.get("peft") or chosen.get("peft") or "lora"
        underneath = CHAT_DEFAULTS.get(peft, {})
        if "model" in chosen and "model" not in data:  # an OCR preset's model
            chosen = {k: v for k, v in chosen.items() if k != "model"}
    values = {**underneath, **chosen, **data}
    return from_dict(TrainingConfig, {**values, **_lora_filled(values)}, strict=strict)


# Always on the command line, even when equal to the baseline: what the baseline is made of.
_ALWAYS = ("dataset", "out", "trainer_type", "peft", "preset")


def train_options(config: TrainingConfig) -> dict:
    """The options that reproduce ``config``: the fields that differ from what the command's
    own defaults (trainer type and PEFT method included) give, with those defaults' makings
    (dataset, out, trainer type, PEFT method, preset). What ``train_command`` writes as flags
    and what a cloned run's Train form is filled with."""
    values = to_dict(config)
    baseline = to_dict(training_config({name: values[name] for name in _ALWAYS}))
    return {name: value for name, value in values.items() if value is not None
            and (name in _ALWAYS or value != baseline[name])}


def train_command(config: TrainingConfig) -> str:
    """The ``deepsynth train`` command that parses back to ``config``."""
    words = ["deepsynth", "train"]
    for name, value in train_options(config).items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            words.append(flag if value else f"--no-{name.replace('_', '-')}")
        else:
            words += [flag, str(value)]
    return shlex.join(words)
