"""What the memory estimate counts, read off the model built on the meta device.

The model a config trains is built without weights (``torch.device("meta")``: shapes and
dtypes, no memory) and made trainable by the trainer's own builder (``setup.make_trainable``:
the vision side frozen, the real PEFT config applied, or the decoder unfrozen), so every
parameter count here is exact, the adapters' included. Nothing is downloaded: presets and
``random:`` specs are built from the architecture DeepSynth ships, a folder from its
``config.json``.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepsynth.config.training import TrainingConfig
from deepsynth.errors import ConfigError, ConfigRefused, DeepSynthError

_LAYER = re.compile(r"(?:^|\.)layers\.(\d+)\.")
_DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8, "int8": 1,
                "uint8": 1}
# QLoRA: bitsandbytes NF4 with double quantization packs two weights a byte, plus one 8-bit
# absmax per 64 weights and one float32 per 256 of those (0.516 bytes a weight).
NF4_BYTES = 0.5 + 1 / 64 + 4 / (64 * 256)


@dataclass
class Adapted:
    """One module (or fused parameter) with a LoRA-family adapter, in one decoder layer."""

    layer: int
    name: str  # q_proj, down_proj, experts.gate_up_proj ...
    in_features: int
    out_features: int
    rank: int
    fused: int = 0  # elements of the adapted parameter when it is one (experts, router)
    dora: bool = False
    adapter_parameters: int = 0
    adalora: bool = False


@dataclass
class ModelFacts:
    """The counts and dimensions the memory and time estimates need."""

    family: str  # deepseek_ocr2 | deepseek_ocr (v1) | unlimited_ocr | causal_lm
    text: dict[str, Any]  # the decoder's dimensions (hidden, heads, experts...)
    vision: dict[str, Any]  # the vision side's (SAM, encoder); {} for a causal LM
    image_size: int
    tokens_per_page: int  # an image_size x image_size page in the run's image mode
    parameters: int
    vision_parameters: int
    weight_bytes: int  # as loaded for this config
    trainable: int
    trainable_bytes: int
    largest_trainable: int  # bytes of the largest trainable tensor
    layer_trainable_bytes: dict[int, int] = field(default_factory=dict)
    head_trainable_bytes: int = 0  # lm_head and final norm (backward reaches them first)
    embed_trainable_bytes: int = 0
    adapted: list[Adapted] = field(default_factory=list)
    expert_trainable: int = 0  # trainable elements holding routed experts' weights
    dense_layers: int = 0
    sparse_layers: int = 0
    base_dtype: str = "float32"
    trainable_dtype: str = "float32"
    quantized: int = 0  # QLoRA: weights stored in 4 bits
    quantized_bytes: int = 0
    crops: int = 0  # local crops of such a page (image mode crops), each crop_size px
    crop_size: int = 0

    @property
    def layers(self) -> int:
        return self.dense_layers + self.sparse_layers

    @property
    def view_patches(self) -> list[int]:
        """SAM's patches for each view of a page: the global view, then each crop."""
        if not self.vision:
            return []
        patch = self.vision["patch"]
        return [self.vision["patches"]] + [(self.crop_size // patch) ** 2] * self.crops


def dtype_bytes(name: str) -> int:
    return _DTYPE_BYTES[name.removeprefix("torch.")]


def build_meta(spec: str, root: Path | None, chat: bool, dtype):
    """The model ``spec`` names, built on the meta device in ``dtype`` (parameters the model
    class keeps in float32, the MoE router, stay so), its family and its image size (0: none)."""
    from deepsynth.models.meta_build import build_on_meta

    config, kind, image_size = model_config(spec, root, chat)
    return build_on_meta(lambda: _instantiate(config), dtype), kind, image_size


def model_config(spec: str, root: Path | None, chat: bool):
    """The transformers config of the model ``spec`` names, its family and its image size
    (0: none), from what is on this machine."""
    from deepsynth.models.random_spec import (
        REAL_MODELS,
        family,
        parse_random_spec,
        real_config,
    )

    if spec in REAL_MODELS:  # a published model: its architecture ships with DeepSynth
        spec = f"random:{spec}"
    random = parse_random_spec(spec)
    if random:
        config, kind = real_config(*random), family(random[0])
    else:
        config, kind = _folder_config(spec, root, chat)
    image = getattr(getattr(config, "vision_config", None), "sam_config", None)
    return config, kind, int(image.image_size) if image is not None else 0


def _folder_config(spec: str, root: Path | None, chat: bool):
    """The transformers config of a preset built here, a model folder or a cached Hub id,
    and the model's family. v1 and Unlimited-OCR checkpoints in their own layout are
    converted as loading converts them (the image token's id changes no count)."""
    from transformers import AutoConfig

    from deepsynth.models import deepseek_ocr_v1, unlimited_ocr
    from deepsynth.models.model_info import read_info
    from deepsynth.models.registry import model_family, resolve_model

    location, preset = resolve_model(spec, root, hub_ids=chat)
    folder = Path(location)
    info = read_info(folder) if folder.is_dir() else {}
    if info.get("adapter") and info.get("base_model"):  # an adapter run: its base model
        return _folder_config(info["base_model"], root, chat)
    family = model_family(location, preset, info, spec)
    try:
        if family == "deepseek_ocr":
            return deepseek_ocr_v1.folder_config(location, spec, _v1_image_token), family
        if family == unlimited_ocr.FAMILY:
            return unlimited_ocr.folder_config(location, spec, _v1_image_token), family
        return AutoConfig.from_pretrained(location, local_files_only=True), family
    except (OSError, ValueError, DeepSynthError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigRefused("model", f"cannot estimate {spec!r} offline: its config.json is "
                            f"not here ({str(exc).splitlines()[0][:120]})",
                            "a preset, random:NAME[?layers=N], a model folder or a Hub id "
                            "in the local cache") from None


def _v1_image_token() -> int:
    from deepsynth.models.deepseek_ocr_v1 import V1_IMAGE_TOKEN_ID

    return V1_IMAGE_TOKEN_ID


def _instantiate(config):
    import transformers

    classes = {"deepseek_ocr2": "DeepseekOcr2ForConditionalGeneration",
               "unlimited_ocr": "UnlimitedOcrForConditionalGeneration"}
    if config.model_type in classes:
        return getattr(transformers, classes[config.model_type])(config)
    # The class itself, not AutoModelForCausalLM.from_config: that one switches torch's
    # process-wide default dtype to the config's while it builds (see models/meta_build.py).
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

    return MODEL_FOR_CAUSAL_LM_MAPPING[type(config)](config)


def trainable_meta(config: TrainingConfig, root: Path | None = None):
    """The meta model made trainable exactly as the trainer makes it (``make_trainable``),
    its family and image size."""
    from deepsynth.models.registry import LoadedModel
    from deepsynth.training import setup

    chat = config.task.kind == "chat"
    model, family, image_size = build_meta(config.task.model, root, chat,
                                           setup.base_dtype(config))
    if chat != (family == "causal_lm"):
        raise ConfigRefused("model", f"{config.task.model} is a {family} model; trainer_type "
                            f"{config.task.trainer_type} needs "
                            f"{'a causal LM' if chat else 'a DeepSeek-OCR-family model'}")
    loaded = LoadedModel(model, None, family, config.task.model, image_size, -1, True)
    steps = config.schedule.max_steps or 1000  # AdaLoRA's schedule; no count depends on it
    with warnings.catch_warnings():  # deprecations inside PEFT and transformers: not ours
        warnings.simplefilter("ignore", FutureWarning)
        return setup.make_trainable(loaded, config, steps), family, image_size


def model_facts(config: TrainingConfig, root: Path | None = None) -> ModelFacts:
    """Exact counts of the model ``config`` trains, with the dimensions of its parts."""
    from deepsynth.models.components import is_vision
    from deepsynth.render.tokens import page_view
    from deepsynth.training import setup

    model, family, image_size = trainable_meta(config, root)
    base = str(setup.base_dtype(config)).removeprefix("torch.")
    quantized = _quantized_weights(model) if setup.uses_4bit(config) else set()
    view = page_view(family, image_size, config.task.image_mode) if image_size else None
    facts = ModelFacts(family, _text_dims(model.config), _vision_dims(model.config, family),
                       image_size, view.tokens if view else 0, 0, 0, 0, 0, 0, 0,
                       base_dtype=base, crops=view.crops if view else 0,
                       crop_size=view.tile if view else 0)
    for name, parameter in model.named_parameters():
        size = parameter.numel()
        nbytes = size * dtype_bytes(str(parameter.dtype))
        facts.parameters += size
        if family != "causal_lm" and is_vision(name, family):
            facts.vision_parameters += size
        if id(parameter) in quantized:
            facts.quantized += size
            facts.quantized_bytes += round(size * NF4_BYTES)
        facts.weight_bytes += round(size * NF4_BYTES) if id(parameter) in quantized else nbytes
        if parameter.requires_grad:
            _count_trainable(facts, name, size, nbytes)
            facts.trainable_dtype = str(parameter.dtype).removeprefix("torch.")
    facts.adapted = _adapted(model)
    facts.expert_trainable = _expert_elements(model)
    types = facts.text["mlp_layer_types"]
    facts.sparse_layers = sum(1 for t in types if t == "sparse")
    facts.dense_layers = len(types) - facts.sparse_layers
    return facts


def _count_trainable(facts: ModelFacts, name: str, size: int, nbytes: int) -> None:
    facts.trainable += size
    facts.trainable_bytes += nbytes
    facts.largest_trainable = max(facts.largest_trainable, nbytes)
    layer = _LAYER.search(name)
    if layer:
        index = int(layer.group(1))
        facts.layer_trainable_bytes[index] = facts.layer_trainable_bytes.get(index, 0) + nbytes
    elif "embed_tokens" in name:
        facts.embed_trainable_bytes += nbytes
    else:  # lm_head and the final norm: the first gradients backward makes
        facts.head_trainable_bytes += nbytes


def _quantized_weights(model) -> set[int]:
    """The weights bitsandbytes stores in 4 bits: every nn.Linear but the output head."""
    import torch

    head = model.get_output_embeddings()
    return {id(m.weight) for m in model.modules()
            if type(m) is torch.nn.Linear and m is not head}


def _adapted(model) -> list[Adapted]:
    from peft.tuners.adalora import AdaLoraLayer
    from peft.tuners.lora import LoraLayer, ParamWrapper

    found = []
    for name, module in model.named_modules():
        if not isinstance(module, LoraLayer) or "default" not in module.r:
            continue
        layer = _LAYER.search(name + ".")
        short = name.rsplit("language_model.layers.", 1)[-1].split(".", 1)[-1]
        fused = 0
        if isinstance(module, ParamWrapper):
            fused = module.get_param().numel()
            short = f"{short.removesuffix('.base_layer')}.{module.parameter_name}"
        found.append(Adapted(int(layer.group(1)) if layer else -1, short.replace(
            ".base_layer", ""), module.in_features, module.out_features,
            module.r["default"], fused, bool(getattr(module, "use_dora", {}).get("default")),
            _numel(module.lora_A["default"]) + _numel(module.lora_B["default"]),
            isinstance(module, AdaLoraLayer)))
    return found


def _numel(part) -> int:
    """An adapter factor's elements: a module's weight (LoRA) or a parameter (AdaLoRA)."""
    return getattr(part, "weight", part).numel()


def _expert_elements(model) -> int:
    """Trainable elements that expert dropout saves and restores (moe.expert_slices)."""
    from deepsynth.training.moe import expert_slices

    total = 0
    for layer in expert_slices(model):
        for expert in layer.slices:
            total += sum(parameter[index].numel() for parameter, index in expert)
    return total


def _text_dims(config) -> dict[str, Any]:
    text = getattr(config, "text_config", config)
    heads = text.num_attention_heads
    layers = text.num_hidden_layers
    types = list(getattr(text, "mlp_layer_types", None) or ["dense"] * layers)[:layers]
    return {"hidden": text.hidden_size, "heads": heads,
            "kv_heads": getattr(text, "num_key_value_heads", None) or heads,
            "head_dim": getattr(text, "head_dim", None) or text.hidden_size // heads,
            "intermediate": text.intermediate_size, "vocab": text.vocab_size,
            "mlp_layer_types": types,
            "experts": getattr(text, "n_routed_experts", 0) or 0,
            "top_k": getattr(text, "num_experts_per_tok", 0) or 0,
            "moe_intermediate": getattr(text, "moe_intermediate_size", 0) or 0,
            "shared_experts": getattr(text, "n_shared_experts", 0) or 0}


def _vision_dims(config, family: str) -> dict[str, Any]:
    vision = getattr(config, "vision_config", None)
    if vision is None:
        return {}
    sam, encoder = vision.sam_config, vision.encoder_config
    # The second encoder: DeepSeek-OCR-2's Qwen2 (a SwiGLU MLP) reads a view's downsampled
    # patches followed by as many learned queries; v1's CLIP-L (a two-matrix MLP) reads the
    # patches and its class token.
    ocr2 = family == "deepseek_ocr2"
    return {"sam_hidden": sam.hidden_size, "sam_layers": sam.num_hidden_layers,
            "sam_heads": sam.num_attention_heads, "sam_mlp": sam.mlp_dim,
            "global_layers": len(sam.global_attn_indexes), "window": sam.window_size,
            "patch": sam.patch_size, "patches": (sam.image_size // sam.patch_size) ** 2,
            "neck": sam.output_channels, "downsample": list(sam.downsample_channels),
            "encoder_hidden": encoder.hidden_size, "encoder_layers": encoder.num_hidden_layers,
            "encoder_heads": encoder.num_attention_heads,
            "encoder_kv_heads": getattr(encoder, "num_key_value_heads", None)
            or encoder.num_attention_heads,
            "encoder_intermediate": encoder.intermediate_size,
            "encoder_mlp_matrices": 3 if ocr2 else 2, "encoder_queries": ocr2}
