"""Trainable parts of the decoder: LoRA, DoRA, AdaLoRA (PEFT) or full fine-tuning, never on
the vision side; and saving/reloading adapters exactly.

Adapters are saved as the trainable tensors by their exact names plus the PEFT config, and
reloaded by building the same PEFT model and loading those tensors strictly: for this model
``PeftModel.from_pretrained`` silently loads nothing (a key-renaming rule doubles
``language_model.``), so it is not used.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from deepsynth.errors import DeepSynthError
from deepsynth.models.components import is_vision

ADAPTER_WEIGHTS = "adapter_weights.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
# Only decoder modules are adapted: the vision encoder has q_proj/gate_proj names too.
DECODER_SCOPE = r".*language_model\.layers\.\d+\.(self_attn|mlp|mlp\.shared_experts)\.({})$"


def peft_config(method: str, modules: tuple[str, ...], parameters: tuple[str, ...], r: int,
                alpha: int, dropout: float, total_steps: int, family: str = "deepseek_ocr2"):
    """The PEFT config for ``method`` (lora, dora, adalora, qlora) on the decoder; a causal
    LM (no vision side) takes the module names as they are, or PEFT's ``all-linear``."""
    from peft import AdaLoraConfig, LoraConfig

    if family == "causal_lm":
        target = "all-linear" if modules == ("all-linear",) else list(modules)
    else:
        target = DECODER_SCOPE.format("|".join(modules))
    if method == "adalora":  # never with parameters: the config refuses it (peft)
        # Warm up for the first 10% of steps and fix the ranks for the last 20%, as in the
        # AdaLoRA paper's schedules; ranks are re-allocated in between.
        return AdaLoraConfig(target_modules=target, init_r=r, target_r=max(r // 2, 1),
                             lora_alpha=alpha, lora_dropout=dropout,
                             total_step=max(total_steps, 1), tinit=total_steps // 10,
                             tfinal=total_steps // 5)
    return LoraConfig(target_modules=target, target_parameters=list(parameters) or None,
                      r=r, lora_alpha=alpha, lora_dropout=dropout, use_dora=method == "dora")


def apply_adapters(model, config, family: str = "deepseek_ocr2") -> torch.nn.Module:
    from peft import get_peft_model

    wrapped = get_peft_model(model, config)
    for name, parameter in wrapped.named_parameters():
        if parameter.requires_grad and is_vision(name, family):
            raise DeepSynthError(f"an adapter reached the vision side ({name}); refusing")
    return wrapped


def unfreeze_decoder(model, family: str) -> None:
    """Full fine-tuning: every parameter outside the vision side trains."""
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(not is_vision(name, family))


def trainable_state(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().cpu().contiguous() for n, p in model.named_parameters()
            if p.requires_grad}


def save_adapter(model, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    save_file(trainable_state(model), str(folder / ADAPTER_WEIGHTS))
    config = model.peft_config["default"].to_dict()
    config = {k: (sorted(v) if isinstance(v, set) else v) for k, v in config.items()}
    (folder / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2, default=str))


def load_adapter(base_model, folder: Path) -> torch.nn.Module:
    """Rebuild the PEFT model on ``base_model`` and load the saved tensors, strictly."""
    from peft import PeftConfig, get_peft_model

    data = json.loads((folder / ADAPTER_CONFIG).read_text())
    config = PeftConfig.from_peft_type(**data)
    config.inference_mode = False
    model = get_peft_model(base_model, config)
    weights = load_file(str(folder / ADAPTER_WEIGHTS))
    missing, unexpected = model.load_state_dict(weights, strict=False)
    names = dict(model.named_parameters())
    not_loaded = [k for k in weights if k not in names]
    if unexpected or not_loaded:
        raise DeepSynthError(f"adapter in {folder} does not fit the model: unexpected "
                             f"{(unexpected or not_loaded)[:3]}")
    return model
