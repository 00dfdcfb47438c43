"""The named values of training: LoRA presets (which modules adapters reach), training
presets, the chat trainer's per-PEFT defaults, and trainer types with the task each trains.

:func:`deepsynth.config.training.training_config` layers them (see there); nothing else
reads them to fill a config.
"""

from __future__ import annotations

from typing import Any

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
                   "help": "every linear layer of a causal LM (the chat trainer)"},
}
OCR_LORA_PRESETS = tuple(name for name in LORA_PRESETS if name != "all_linear")
CHAT_LORA_PRESETS = ("all_linear", "standard")

# The chat trainer's research-based defaults per training type (QLoRA paper, DoRA and
# AdaLoRA papers, common full fine-tuning practice); preset and explicit fields override them.
_ADAPTER_DEFAULTS = {"model": "tiny-chat-lm", "lora_preset": "all_linear", "lora_r": 64,
                     "lora_alpha": 128, "lora_dropout": 0.05, "warmup_ratio": 0.03,
                     "weight_decay": 0.1, "gradient_accumulation_steps": 16}
CHAT_DEFAULTS: dict[str, dict[str, Any]] = {
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
# trainer_type's public values (kept for the API and the seeds) and the task each trains;
# code branches on the task, never on these names.
TASK_OF_TRAINER = {"production": "ocr", "deepsynth": "ocr", "generic": "chat"}
TRAINER_TYPES = tuple(TASK_OF_TRAINER)
TASKS = ("ocr", "chat")


def task_kind(trainer_type: str | None) -> str:
    """The task (``ocr`` or ``chat``) of a trainer type; None is the default trainer's (a
    value that is no trainer type is refused when the config is parsed)."""
    if not isinstance(trainer_type, str | None):
        return "ocr"
    return TASK_OF_TRAINER.get(trainer_type or TRAINER_TYPES[0], "ocr")


def default_lora_dropout(lora_preset: str) -> float:
    """0.05, or 0 where the preset adapts the router or experts (PEFT allows no dropout)."""
    return 0.0 if LORA_PRESETS[lora_preset]["parameters"] else 0.05
