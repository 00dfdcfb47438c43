"""Configuration of fine-tuning: one flat dataclass, its presets, and the checks that refuse
options that could not act under the chosen setting.

The same names are CLI flags (``--kebab-case``), REST fields and UI inputs. A preset fills
fields; fields given explicitly override it (see :func:`training_config`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from deepsynth.config.spec import from_dict, hub_repo_id, option
from deepsynth.errors import ConfigError

DEFAULT_PROMPT = "Summarize this document."

# Which modules each LoRA preset adapts (the LoRA guide). In this model "down_proj",
# "gate_proj" and "up_proj" match only the dense and shared-expert MLPs; routed experts are
# fused 3-D tensors reached with target_parameters, the router (not an nn.Linear) too.
ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP = ("gate_proj", "up_proj", "down_proj")
ROUTER = ("mlp.gate.weight",)
EXPERTS = ("mlp.experts.gate_up_proj", "mlp.experts.down_proj")
LORA_PRESETS: dict[str, dict[str, Any]] = {
    "standard": {"modules": ATTENTION, "parameters": (), "r": 16, "alpha": 32,
                 "help": "attention only; the safe default"},
    "tiny_data": {"modules": ATTENTION + ("down_proj",), "parameters": (), "r": 8, "alpha": 16,
                  "help": "attention + down_proj, small rank: under 10 samples"},
    "balanced": {"modules": ATTENTION + MLP, "parameters": (), "r": 16, "alpha": 32,
                 "help": "attention + dense and shared-expert MLPs: 10-50 samples"},
    "router_focused": {"modules": ATTENTION + MLP, "parameters": ROUTER, "r": 16, "alpha": 32,
                       "help": "balanced + the MoE router"},
    "high_capacity_moe": {"modules": ATTENTION + MLP, "parameters": ROUTER + EXPERTS, "r": 32,
                          "alpha": 64, "help": "+ routed experts and router: 50+ samples"},
    "qlora_4bit": {"modules": ATTENTION + MLP, "parameters": (), "r": 16, "alpha": 32,
                   "help": "balanced on a 4-bit NF4 base model (CUDA only)"},
    "all_linear": {"modules": ("all-linear",), "parameters": (), "r": 64, "alpha": 128,
                   "help": "every linear layer of a causal LM (the generic chat trainer)"},
}
OCR_LORA_PRESETS = tuple(name for name in LORA_PRESETS if name != "all_linear")
CHAT_LORA_PRESETS = ("all_linear", "standard")

# The generic chat trainer's research-based defaults per training type (QLoRA paper, DoRA and
# AdaLoRA papers, common full fine-tuning practice); preset and explicit fields override them.
_ADAPTER_DEFAULTS = {"model": "tiny-chat-lm", "lora_preset": "all_linear", "lora_r": 64,
                     "lora_alpha": 128, "lora_dropout": 0.05, "warmup_ratio": 0.03,
                     "weight_decay": 0.1, "gradient_accumulation_steps": 16}
GENERIC_DEFAULTS: dict[str, dict[str, Any]] = {
    "lora": {**_ADAPTER_DEFAULTS, "learning_rate": 2e-4},
    "qlora": {**_ADAPTER_DEFAULTS, "learning_rate": 2e-4},
    "dora": {**_ADAPTER_DEFAULTS, "learning_rate": 1e-4},
    "adalora": {**_ADAPTER_DEFAULTS, "learning_rate": 5e-5},
    "full": {"model": "tiny-chat-lm", "lora_preset": "all_linear", "learning_rate": 2e-5,
             "warmup_ratio": 0.03,
             "weight_decay": 0.1, "gradient_accumulation_steps": 32},
}

TRAINING_PRESETS: dict[str, dict[str, Any]] = {
    "default": {"batch_size": 2, "learning_rate": 5e-5, "gradient_accumulation_steps": 8,
                "mixed_precision": "bf16", "scheduler": "cosine", "warmup_ratio": 0.1,
                "max_grad_norm": 1.0, "weight_decay": 0.01, "max_length": 512},
    "low_memory": {"batch_size": 1, "gradient_accumulation_steps": 16, "learning_rate": 5e-5,
                   "mixed_precision": "bf16", "gradient_checkpointing": True},
    "high_memory": {"batch_size": 8, "gradient_accumulation_steps": 2, "learning_rate": 5e-5,
                    "mixed_precision": "bf16"},
    "quick_test": {"batch_size": 2, "gradient_accumulation_steps": 1, "learning_rate": 1e-3,
                   "max_steps": 10, "mixed_precision": "no", "warmup_ratio": 0.0,
                   "eval_steps": 5, "save_steps": 5, "log_steps": 1, "eval_samples": 4,
                   "scheduler": "constant"},
    "high_quality": {"expert_dropout_rate": 0.2, "gate_dropout_rate": 0.1, "bidrop_passes": 3,
                     "num_epochs": 5, "batch_size": 2, "gradient_accumulation_steps": 8,
                     "learning_rate": 2e-5, "peft": "full", "hidden_dropout": 0.1},
    "balanced": {"expert_dropout_rate": 0.15, "gate_dropout_rate": 0.05, "bidrop_passes": 2,
                 "num_epochs": 3, "batch_size": 4, "gradient_accumulation_steps": 4,
                 "learning_rate": 5e-5, "peft": "full", "hidden_dropout": 0.1},
    "fast_iteration": {"expert_dropout_rate": 0.0, "gate_dropout_rate": 0.0, "bidrop_passes": 1,
                       "num_epochs": 1, "batch_size": 4, "gradient_accumulation_steps": 2,
                       "learning_rate": 5e-5},
    "cpu_demo": {"model": "tiny-deepseek-ocr-2", "peft": "full", "batch_size": 4,
                 "gradient_accumulation_steps": 1, "learning_rate": 2e-3, "max_steps": 300,
                 "mixed_precision": "no", "scheduler": "cosine", "warmup_ratio": 0.05,
                 "eval_steps": 100, "save_steps": 100, "log_steps": 10, "eval_samples": 8,
                 "max_length": 256},
}
TRAINER_TYPES = ("production", "deepsynth", "generic")


@dataclass
class TrainingConfig:
    """A fine-tuning run."""

    dataset: str = option(help="a dataset folder made by deepsynth generate; with "
                          "trainer_type generic, a chat JSONL file or hf:org/name")
    out: str = option(help="output folder for checkpoints, metrics and the final model")
    model: str = option("tiny-deepseek-ocr-2", help="model preset or folder")
    trainer_type: str = option("production", choices=TRAINER_TYPES, help=(
        "production: frozen encoder, MoE regularizers, evaluation, resume; deepsynth: frozen "
        "encoder, no MoE regularizers; generic: a causal LM on chat JSONL (docs/chat.md)"))
    preset: str | None = option(None, choices=tuple(TRAINING_PRESETS),
                                help="training preset; explicit options override it")
    peft: str = option("lora", choices=("lora", "qlora", "dora", "adalora", "full"),
                       help="adapter method, or full fine-tuning of the decoder")
    lora_preset: str = option("balanced", choices=tuple(LORA_PRESETS),
                              help="which modules the adapters reach")
    lora_r: int | None = option(None, min=1, max=512, help="adapter rank (default: preset's)")
    lora_alpha: int | None = option(None, min=1, max=1024, help="adapter alpha")
    lora_dropout: float | None = option(None, min=0.0, max=0.5, help="dropout inside the "
                                        "adapters (default 0.05; 0 for presets that adapt "
                                        "the router or experts, which PEFT requires)")
    trust_remote_code: bool = option(False, help="allow DeepSeek-OCR v1's Hub code to run")
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
    seed: int = option(42, min=0, help="random seed")
    max_length: int = option(512, min=8, max=32768,
                             help="text tokens (prompt + summary); image tokens never count")
    max_pages: int = option(4, min=1, max=64, help="skip (and count) longer documents")
    prompt: str = option(DEFAULT_PROMPT, help="instruction placed after the page images")
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
    eval_steps: int = option(100, min=1, help="evaluate the probe subset every N steps")
    log_steps: int = option(10, min=1, help="write metrics every N steps")
    eval_samples: int = option(16, min=1, max=100_000, help="size of the evaluation probe")
    keep_last: int = option(3, min=1, max=1000, help="checkpoints kept")
    early_stopping_patience: int | None = option(None, min=1, help="stop after N evaluations "
                                                 "without improvement")
    early_stopping_metric: str = option("eval_loss", choices=("eval_loss", "rouge1", "rouge2",
                                                              "rougeL"), help="metric watched")
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
    resume_from_checkpoint: str | None = option(None, help="a checkpoint folder, or 'latest' "
                                                "(the newest in --out)")
    push_to_hub: bool = option(False, help="upload the final model (adapters merged) to "
                               "hub_model_id when training completes")
    hub_model_id: str | None = option(None, help="Hub repository for push_to_hub (ORG/NAME)",
                                      check=hub_repo_id)
    public: bool = option(False, help="create the Hub repository public, not private")
    report_to: str = option("none", choices=("none", "tensorboard", "wandb"),
                            help="experiment tracker")
    num_beams: int = option(1, min=1, max=16, help="beams when generating summaries")
    max_new_tokens: int = option(64, min=1, max=4096, help="summary length limit")
    chat_template: str = option("auto", choices=("auto", "model", "builtin"), help=(
        "generic: the model's chat template (auto: when its tokenizer has one) or the "
        "built-in ChatML-style template"))
    chat_reasoning: str = option("render", choices=("render", "drop"),
                                 help="generic: render assistant reasoning, or drop it")
    chat_train_on: str = option("all_assistant", choices=("all_assistant", "last_assistant"),
                                help="generic: which assistant turns carry labels")
    skip_invalid_lines: bool = option(False, help="generic: train on the valid lines of a "
                                      "file with errors (the skipped lines are reported)")
    eval_dataset: str | None = option(None, help="generic: a chat JSONL file to evaluate on "
                                      "(default: no evaluation)")
    train_split: str = option("train", help="split to train on")
    eval_split: str | None = option(None, help="split to evaluate on (default: validation, "
                                    "else test)")

    def check(self) -> None:
        check_conflicts(self)

    @property
    def moe_regularized(self) -> bool:
        return bool(self.expert_dropout_rate or self.gate_dropout_rate or self.bidrop_passes > 1
                    or self.aux_loss_coef or self.z_loss_coef)


def lora_dropout(config: TrainingConfig) -> float:
    """The adapters' dropout: explicit, else 0.05, or 0 where PEFT allows no dropout."""
    if config.lora_dropout is not None:
        return config.lora_dropout
    return 0.0 if LORA_PRESETS[config.lora_preset]["parameters"] else 0.05


def adapted_parameters(config: TrainingConfig) -> tuple[str, ...]:
    return () if config.peft == "full" else LORA_PRESETS[config.lora_preset]["parameters"]


def check_conflicts(config: TrainingConfig) -> None:
    """Refuse options that would silently do nothing under the chosen setting."""
    if config.trainer_type == "generic":
        check_generic(config)
    if config.trainer_type == "deepsynth" and config.moe_regularized:
        raise ConfigError("trainer_type", "deepsynth trains without MoE regularizers; unset "
                          "expert/gate dropout, bidrop_passes and router losses, or use "
                          "trainer_type production")
    adapted = adapted_parameters(config)
    if config.expert_dropout_rate and config.peft != "full" and EXPERTS[0] not in adapted:
        raise ConfigError("expert_dropout_rate", f"acts on routed experts, which lora_preset "
                          f"{config.lora_preset!r} does not train; use lora_preset "
                          f"high_capacity_moe or peft full")
    if config.gate_dropout_rate and config.peft != "full" and ROUTER[0] not in adapted:
        raise ConfigError("gate_dropout_rate", f"acts on the router, which lora_preset "
                          f"{config.lora_preset!r} does not train; use router_focused, "
                          f"high_capacity_moe or peft full")
    if config.bidrop_passes > 1:
        dropout = config.hidden_dropout or config.attention_dropout or (
            config.peft != "full" and lora_dropout(config))
        if not dropout:
            raise ConfigError("bidrop_passes", "needs dropout to make the passes differ: set "
                              "hidden_dropout > 0 (or attention_dropout, or lora_dropout with "
                              "adapters)")
    if config.peft == "qlora" or config.lora_preset == "qlora_4bit":
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("peft", "qlora (4-bit NF4 via bitsandbytes) needs a CUDA GPU; "
                              "use lora on this machine")
    if config.peft in ("dora", "adalora") and adapted:
        raise ConfigError("peft", f"{config.peft} cannot adapt the router or experts "
                          f"(lora_preset {config.lora_preset!r}); use lora, or lora_preset "
                          f"standard, tiny_data or balanced")
    if lora_dropout(config) and adapted and config.peft != "full":
        raise ConfigError("lora_dropout", f"must be 0 with lora_preset {config.lora_preset!r}: "
                          f"PEFT cannot apply dropout to adapters of the router or experts")
    if config.push_to_hub and not config.hub_model_id:
        raise ConfigError("hub_model_id", "is required with push_to_hub", "ORG/NAME")
    if config.trainer_type != "generic" and config.lora_preset not in OCR_LORA_PRESETS:
        raise ConfigError("lora_preset", f"{config.lora_preset} is for causal LMs (trainer_type "
                          f"generic); it would reach the vision encoder",
                          ", ".join(OCR_LORA_PRESETS))
    if config.trainer_type != "generic" and config.eval_dataset:
        raise ConfigError("eval_dataset", "is for trainer_type generic; the OCR trainers "
                          "evaluate on the dataset's eval_split", "unset")
    if config.trainer_type != "generic" and config.model == "tiny-chat-lm":
        raise ConfigError("model", "tiny-chat-lm is a text-only causal LM: use it with "
                          "trainer_type generic", "a DeepSeek-OCR preset or folder")


def check_generic(config: TrainingConfig) -> None:
    """The chat trainer trains a text-only causal LM."""
    from deepsynth.models.registry import MODEL_PRESETS

    if config.augment:
        raise ConfigError("augment", "acts on page images; trainer_type generic has none")
    preset = MODEL_PRESETS.get(config.model)
    if preset is not None and preset.family != "causal_lm":
        raise ConfigError("model", f"{config.model} reads page images; trainer_type generic "
                          f"trains a causal LM", "tiny-chat-lm, a causal LM folder or ORG/NAME")
    for name in ("expert_dropout_rate", "gate_dropout_rate", "aux_loss_coef", "z_loss_coef"):
        if getattr(config, name):
            raise ConfigError(name, "acts on DeepSeek MoE routers and experts, which the "
                              "generic chat trainer does not use", "0")
    if config.lora_preset not in CHAT_LORA_PRESETS:
        raise ConfigError("lora_preset", f"{config.lora_preset} names DeepSeek-OCR modules; "
                          f"trainer_type generic adapts", ", ".join(CHAT_LORA_PRESETS))


def training_config(data: dict[str, Any]) -> TrainingConfig:
    """Parse a mapping (CLI flags given, REST body) with its preset applied underneath."""
    preset = data.get("preset")
    if preset is not None and preset not in TRAINING_PRESETS:
        raise ConfigError("preset", f"must be one of {', '.join(TRAINING_PRESETS)}; got "
                          f"{preset!r}")
    chosen = TRAINING_PRESETS.get(preset, {}) if preset else {}
    underneath = {}
    if data.get("trainer_type") == "generic":
        peft = data.get("peft") or chosen.get("peft") or "lora"
        underneath = GENERIC_DEFAULTS.get(peft, {})
        if "model" in chosen and "model" not in data:  # an OCR preset's model
            chosen = {k: v for k, v in chosen.items() if k != "model"}
    return from_dict(TrainingConfig, {**underneath, **chosen, **data})


def train_command(config: TrainingConfig) -> str:
    """The ``deepsynth train`` command that parses back to ``config``: the fields that differ
    from what the command's own defaults (trainer type and PEFT method included) give."""
    import shlex

    baseline = training_config({"dataset": config.dataset, "out": config.out,
                                "trainer_type": config.trainer_type, "peft": config.peft,
                                "preset": config.preset})
    words = ["deepsynth", "train"]
    for f in dataclasses.fields(TrainingConfig):
        value = getattr(config, f.name)
        always = f.name in ("dataset", "out", "trainer_type", "peft", "preset")
        if value is None or f.metadata.get("secret") or (
                not always and value == getattr(baseline, f.name)):
            continue
        flag = "--" + f.name.replace("_", "-")
        if isinstance(value, bool):
            words.append(flag if value else f"--no-{f.name.replace('_', '-')}")
        else:
            words += [flag, str(value)]
    return shlex.join(words)
