"""Model presets and loading: DeepSeek-OCR-2 (native), DeepSeek-OCR v1 (native too, through
transformers' ``unlimited_ocr`` classes with full causal attention: see
:mod:`deepsynth.models.deepseek_ocr_v1`), Unlimited-OCR (the same classes with its reference
sliding window: :mod:`deepsynth.models.unlimited_ocr`), the tiny demo model, the real
architectures with random weights (``random:deepseek-ocr-2``, ``random:deepseek-ocr``,
``random:unlimited-ocr``, see
:mod:`deepsynth.models.random_spec`), or a local folder saved by DeepSynth or transformers.
No model runs code from its Hub repository, except a chat causal LM with trust_remote_code.

``load_model`` returns the model, its tokenizer and what the data pipeline needs to know
(image size, image tokens per page, the image token id).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepsynth.config.spec import hub_repo_id
from deepsynth.errors import ConfigError, DeepSynthError
from deepsynth.models import deepseek_ocr_v1, tiny, tiny_chat, unlimited_ocr
from deepsynth.models.model_info import read_info
from deepsynth.models.random_spec import PREFIX as RANDOM_PREFIX
from deepsynth.models.random_spec import REAL_MODELS, parse_random_spec, random_model
from deepsynth.models.random_spec import family as real_family
from deepsynth.render.tokens import page_tokens
from deepsynth.workspace import Workspace


@dataclass(frozen=True)
class ModelPreset:
    name: str
    family: str  # deepseek_ocr2 | deepseek_ocr (v1) | unlimited_ocr | causal_lm
    source: str  # a Hub id, or "built-in"
    description: str
    randomly_initialized: bool = False

    def to_dict(self) -> dict:
        return dict(self.__dict__)


MODEL_PRESETS: dict[str, ModelPreset] = {p.name: p for p in (
    ModelPreset("tiny-deepseek-ocr-2", "deepseek_ocr2", "built-in",
                "DeepSeek-OCR-2's architecture at ~1.2M parameters with RANDOM weights: a demo "
                "and test model that learns only what you train it on; not pretrained",
                randomly_initialized=True),
    ModelPreset("deepseek-ocr-2", "deepseek_ocr2", "deepseek-community/DeepSeek-OCR-2",
                "DeepSeek-OCR-2 (~3B parameters, MoE decoder), native transformers class"),
    ModelPreset("deepseek-ocr", "deepseek_ocr", "deepseek-ai/DeepSeek-OCR",
                "DeepSeek-OCR v1 (~3.3B parameters, MoE decoder), its checkpoint read into "
                "transformers' native UnlimitedOcr class with full causal attention (no "
                "remote code)"),
    ModelPreset("unlimited-ocr", unlimited_ocr.FAMILY, "baidu/Unlimited-OCR",
                "Unlimited-OCR (~3.3B parameters, v1's architecture trained for long "
                "documents: 32K context, reference sliding-window attention), transformers' "
                "native UnlimitedOcr class (no remote code)"),
    ModelPreset(tiny_chat.NAME, "causal_lm", "built-in",
                "a Qwen2 causal LM at ~0.2M parameters with RANDOM weights and an offline "
                "tokenizer: the demo and test model of the chat trainer; not "
                "pretrained", randomly_initialized=True),
    *(ModelPreset(f"{RANDOM_PREFIX}{name}", real_family(name), "built-in",
                  f"{name}'s real architecture at its real size with RANDOM weights "
                  f"(seeded), built in memory (nothing downloaded, no weights cached); "
                  f"{RANDOM_PREFIX}{name}?layers=N keeps the first N decoder layers. For "
                  f"memory and speed measurements and tests; not pretrained",
                  randomly_initialized=True)
      for name in REAL_MODELS),
)}
# Re-entrant: an adapter's load loads its base.
_LOADING = threading.RLock()
BUILT_IN = {tiny.NAME: tiny.ensure_tiny_model, tiny_chat.NAME: tiny_chat.ensure_tiny_chat_model}


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    family: str
    name: str
    image_size: int
    image_token_id: int
    randomly_initialized: bool

    @property
    def image_tokens_per_page(self) -> int:
        # From the family's layout at the model's image size (for DeepSeek-OCR-2 not its
        # processor's count, which is wrong off 768/1024).
        return page_tokens(self.family, self.image_size)


def preset_of(spec: str) -> ModelPreset | None:
    """The preset ``spec`` names: a preset's name, or a ``random:`` spec (its options
    aside); None for a folder or Hub id. A malformed ``random:`` spec is a ConfigError."""
    random = parse_random_spec(spec)
    return MODEL_PRESETS[f"{RANDOM_PREFIX}{random[0]}"] if random else MODEL_PRESETS.get(spec)


def resolve_model(spec: str, root: Path | None = None,
                  hub_ids: bool = False) -> tuple[str, ModelPreset | None]:
    """Where to load ``spec`` from (a folder or Hub id) and its preset, if it is one; a
    ``random:`` spec is its own location (built in memory, never from a folder).
    ``hub_ids``: any ORG/NAME is a Hub model id (the chat trainer's models)."""
    if parse_random_spec(spec):
        return spec, preset_of(spec)
    if spec in MODEL_PRESETS:
        preset = MODEL_PRESETS[spec]
        if preset.name in BUILT_IN:
            return str(BUILT_IN[preset.name](Workspace(root).cache)), preset
        return preset.source, preset
    if hub_ids and not hub_repo_id(spec):  # ORG/NAME is the Hub's, even if such a folder
        return spec, None                   # exists here (write ./ORG/NAME for that)
    if Path(spec).expanduser().is_dir():
        return str(Path(spec).expanduser()), None
    raise ConfigError("model", f"must be a preset ({', '.join(MODEL_PRESETS)}), "
                      f"{RANDOM_PREFIX}NAME?layers=N or a model folder"
                      f"{' or a Hub id ORG/NAME' if hub_ids else ''}; got {spec!r}")


FAMILIES = ("DeepSeek-OCR-2, DeepSeek-OCR v1, Unlimited-OCR, or a causal LM (the chat "
            "trainer)")


def model_family(location: str, preset: ModelPreset | None, info: dict,
                 spec: str | None = None) -> str:
    """A model's family: its preset's, DeepSynth's metadata's, or its config.json's (a Hub
    id without a preset is a causal LM's); a folder of no family is a ConfigError."""
    if preset:
        return preset.family
    if info.get("family"):
        return info["family"]
    if not Path(location).is_dir():
        return "causal_lm"  # a chat trainer's Hub id: its loader reports what fails
    name = spec or location
    try:
        raw = json.loads((Path(location) / "config.json").read_text(encoding="utf-8"))
    except OSError:
        raise ConfigError("model", f"{name}: {location} has no config.json, so it is no "
                          f"model folder", FAMILIES) from None
    except ValueError as exc:
        raise ConfigError("model", f"{name}: its config.json is not JSON ({exc})",
                          FAMILIES) from None
    return _family_of_config(raw if isinstance(raw, dict) else {}, name)


def _family_of_config(raw: dict, name: str) -> str:
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    model_type = raw.get("model_type")
    if model_type == "deepseek_ocr2":
        return "deepseek_ocr2"
    if deepseek_ocr_v1.is_v1_layout(raw) or deepseek_ocr_v1.is_full_attention_native(raw):
        return "deepseek_ocr"
    if unlimited_ocr.is_original_layout(raw) or unlimited_ocr.is_sliding_native(raw):
        return unlimited_ocr.FAMILY
    if model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES or "AutoModelForCausalLM" in (
            raw.get("auto_map") or {}):
        return "causal_lm"
    raise ConfigError("model", f"{name} is a {model_type!r} model, of no family DeepSynth "
                      f"trains", FAMILIES)


def _quantization(quantize_4bit: bool) -> dict:
    """QLoRA's 4-bit NF4 base (bitsandbytes, CUDA only; the config refuses it without CUDA)."""
    if not quantize_4bit:
        return {}
    import torch
    from transformers import BitsAndBytesConfig

    return {"quantization_config": BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16), "device_map": {"": 0}}


def load_model(spec: str, *, root: Path | None = None, trust_remote_code: bool = False,
               dtype: Any = None, attention_dropout: float = 0.0,
               quantize_4bit: bool = False, hub_ids: bool = False,
               sliding_window: int | None = None) -> LoadedModel:
    """Load a preset, ``random:`` spec or folder. ``dtype`` None means float32 (the weights
    are upcast); modules the model keeps in float32 (the MoE router) stay so.
    ``sliding_window``: Unlimited-OCR's window in generation (default: the one the model was
    saved with, else its checkpoint's); a ConfigError for a model of another family.

    One load at a time in a process: transformers' ``from_pretrained`` sets torch's
    process-wide default dtype to ``dtype`` and restores the one it found, so two loads in
    different threads that overlap could leave the process half precision for good."""
    with _LOADING:
        return _load_model(spec, root, trust_remote_code, dtype, attention_dropout,
                           quantize_4bit, hub_ids, sliding_window)


def _load_model(spec: str, root: Path | None, trust_remote_code: bool, dtype: Any,
                attention_dropout: float, quantize_4bit: bool, hub_ids: bool,
                sliding_window: int | None) -> LoadedModel:
    import torch

    location, preset = resolve_model(spec, root, hub_ids)
    dtype = dtype or torch.float32
    random = parse_random_spec(spec)
    if random:
        if sliding_window is not None and real_family(random[0]) != unlimited_ocr.FAMILY:
            raise _no_window(spec, real_family(random[0]))  # refused before it is built
        return _with_window(_load_random(spec, *random, root, dtype, attention_dropout,
                                         quantize_4bit), sliding_window)
    info = read_info(Path(location)) if Path(location).is_dir() else {}
    window = sliding_window or info.get("sliding_window")
    if info.get("adapter"):
        return _with_window(_load_with_adapter(spec, Path(location), info, root, dtype,
                                               attention_dropout), window)
    family = model_family(location, preset, info, spec)
    if window is not None and family != unlimited_ocr.FAMILY:
        raise _no_window(spec, family)
    if family == "causal_lm":
        return _load_causal_lm(spec, location, preset, info, dtype, quantize_4bit,
                               trust_remote_code)
    from transformers import DeepseekOcr2ForConditionalGeneration

    try:
        tokenizer = deepseek_ocr_v1.ocr_tokenizer(location, v1=family != "deepseek_ocr2")
        if family == unlimited_ocr.FAMILY:
            model = unlimited_ocr.load(location, spec, tokenizer, dtype,
                                       _quantization(quantize_4bit), window)
        elif family == "deepseek_ocr":
            model = deepseek_ocr_v1.load(location, spec, tokenizer, dtype,
                                         _quantization(quantize_4bit))
        else:
            model = DeepseekOcr2ForConditionalGeneration.from_pretrained(
                location, dtype=dtype, **_quantization(quantize_4bit))
    except (OSError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise DeepSynthError(f"cannot load model {spec!r} from {location}: "
                             f"{str(exc).splitlines()[0]}") from None
    image_size = info.get("image_size") or model.config.vision_config.sam_config.image_size
    randomly = bool(info.get("randomly_initialized", preset.randomly_initialized if preset
                             else False))
    return _ocr_loaded(model, tokenizer, spec, family, int(image_size), randomly,
                       attention_dropout)


def _no_window(spec: str, family: str) -> ConfigError:
    return ConfigError("sliding_window", f"applies to Unlimited-OCR models only; {spec} is "
                       f"a {family} model (leave it unset)", "unset, or an Unlimited-OCR model")


def _with_window(loaded: LoadedModel, window: int | None) -> LoadedModel:
    """``loaded`` generating with Unlimited-OCR's ``window`` (None: as it is)."""
    if window is not None:
        if loaded.family != unlimited_ocr.FAMILY:
            raise _no_window(loaded.name, loaded.family)
        unlimited_ocr.set_window(loaded.model, window)
    return loaded


def _load_random(spec: str, name: str, layers: int | None, root: Path | None, dtype: Any,
                 attention_dropout: float, quantize_4bit: bool) -> LoadedModel:
    """A ``random:`` spec: the real architecture built in memory (random weights, seeded),
    with the tiny model's offline tokenizer; only that tokenizer is cached on disk."""
    from transformers import AutoTokenizer

    if quantize_4bit:
        raise ConfigError("peft", f"qlora quantizes weights as they load; {spec} is built in "
                          f"memory, with none to load", "lora, dora, adalora or full")
    tokenizer = AutoTokenizer.from_pretrained(tiny.ensure_tokenizer(Workspace(root).cache))
    model = random_model(name, layers, tokenizer, dtype)
    return _ocr_loaded(model, tokenizer, spec, real_family(name),
                       model.config.vision_config.sam_config.image_size, True, attention_dropout)


def _ocr_loaded(model, tokenizer, spec: str, family: str, image_size: int, randomly: bool,
                attention_dropout: float) -> LoadedModel:
    model.config.text_config.attention_dropout = attention_dropout
    for layer in model.model.language_model.layers:
        layer.self_attn.attention_dropout = attention_dropout
    tokenizer = with_pad_token(tokenizer)
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return LoadedModel(model, tokenizer, family, spec, int(image_size),
                       model.config.image_token_id, randomly)


def with_pad_token(tokenizer):
    """``tokenizer`` with a pad token: EOS stands in when it has none (batches need padding;
    the collator's attention mask, built from lengths, keeps padding out of attention)."""
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token is None:
            raise DeepSynthError("the model's tokenizer has neither a pad nor an EOS token; "
                                 "batches cannot be padded")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _load_causal_lm(spec: str, location: str, preset: ModelPreset | None, info: dict,
                    dtype: Any, quantize_4bit: bool, trust_remote_code: bool) -> LoadedModel:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        model = AutoModelForCausalLM.from_pretrained(
            location, dtype=dtype, trust_remote_code=trust_remote_code,
            **_quantization(quantize_4bit))
        tokenizer = AutoTokenizer.from_pretrained(location, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise DeepSynthError(f"cannot load causal LM {spec!r} from {location}: "
                             f"{str(exc).splitlines()[0]}") from None
    tokenizer = with_pad_token(tokenizer)
    randomly = bool(info.get("randomly_initialized", preset.randomly_initialized if preset
                             else False))
    return LoadedModel(model, tokenizer, "causal_lm", spec, 0, -1, randomly)


def _load_with_adapter(spec: str, folder: Path, info: dict, root: Path | None, dtype: Any,
                       attention_dropout: float) -> LoadedModel:
    """A DeepSynth adapter folder: its base model with the saved adapter loaded exactly."""
    from transformers import AutoTokenizer

    from deepsynth.models.adapters import load_adapter

    base = load_model(info["base_model"], root=root, dtype=dtype,
                      attention_dropout=attention_dropout)
    model = load_adapter(base.model, folder)
    return LoadedModel(model, with_pad_token(AutoTokenizer.from_pretrained(folder)),
                       base.family, spec, base.image_size, base.image_token_id,
                       base.randomly_initialized)
