"""DeepSeek-OCR v1 (``deepseek-ai/DeepSeek-OCR``) without its remote code.

v1's checkpoint, as v1 writes it (a ``config.json`` of model_type ``deepseek_vl_v2`` with the
decoder under ``language_config`` and the two vision encoders under ``vision_config.width``;
weights named ``sam_model.*``, ``vision_model.*``, ``projector.layers.*``, ``image_newline``,
``view_seperator``, ``layers.N.mlp.experts.E.*``), is loaded into transformers' native
``UnlimitedOcrForConditionalGeneration``. That class is v1's architecture (SAM ViT-B, then
CLIP-L fed SAM's features, a linear projector of both, a newline token after each row of
image features and a view separator, the DeepSeek-V2 decoder with multi-head attention and
MoE) plus reference sliding-window attention, which DeepSynth turns off: every decoder layer
is ``full_attention``, the plain causal attention v1 runs. transformers' weight-conversion
mapping for ``unlimited_ocr`` reads v1's names (and writes them back on save).
``tests/test_ocr_v1.py`` proves the logits equal an independent causal reference of v1's
decoder on the same weights, and that every tensor of v1's layout lands where it belongs.

v1's remote code hardcodes the vision encoders (its ``build_sam_vit_b``, ``build_clip_l``)
and lists their sizes under ``vision_config.width``; they are read from there, with the
values v1 hardcodes for what it does not list (SAM: 16 px patches, 14 px windows, a 256
channel neck, MLP 4x; CLIP: MLP 4x). What the native class would compute differently (MLA
attention, normalized top-k weights, sigmoid routing, rope scaling, a non-linear projector)
is refused, never approximated.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deepsynth.errors import ConfigError, DeepSynthError

V1_MODEL_TYPE = "deepseek_vl_v2"
V1_ARCHITECTURE = "DeepseekOCRForCausalLM"
NATIVE_MODEL_TYPE = "unlimited_ocr"
SAM_KEY, CLIP_KEY = "sam_vit_b", "clip-l-14-224"
IMAGE_TOKEN = "<image>"
V1_IMAGE_TOKEN_ID = 128815  # <image> in v1's vocabulary (the native config's default too)
# DeepSeek-V2's config defaults (v1's configuration_deepseek_v2.py) for what v1's config.json
# leaves out: the native class's own defaults must not decide these.
DECODER_DEFAULTS = {"hidden_act": "silu", "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
                    "routed_scaling_factor": 1.0, "attention_bias": False,
                    "initializer_range": 0.02}
# Values v1's code could run with that the native class computes otherwise: refused.
# (key, the value the native class computes, v1's default when the key is absent)
REQUIRED = (("use_mla", False, True), ("norm_topk_prob", False, False),
            ("scoring_func", "softmax", "softmax"), ("moe_layer_freq", 1, 1),
            ("rope_scaling", None, None))
TOPK_METHODS = ("greedy", "group_limited_greedy")
_TEXT_KEYS = ("vocab_size", "hidden_size", "intermediate_size", "moe_intermediate_size",
              "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
              "n_routed_experts", "n_shared_experts", "num_experts_per_tok",
              "max_position_embeddings", "n_group", "topk_group", "topk_method",
              "bos_token_id", "eos_token_id")


def is_v1_layout(raw: dict) -> bool:
    """A config.json as DeepSeek-OCR v1 writes it (DeepSeek-VL2 shares its model_type)."""
    return raw.get("model_type") == V1_MODEL_TYPE and (
        V1_ARCHITECTURE in (raw.get("architectures") or ())
        or (raw.get("vision_config") or {}).get("model_name") == "deeplip_b_l")


def is_full_attention_native(raw: dict) -> bool:
    """A native ``unlimited_ocr`` config.json whose layers all use full attention: a v1
    model saved by DeepSynth (Unlimited-OCR's own checkpoints slide a window)."""
    layers = (raw.get("text_config") or {}).get("layer_types") or ()
    return raw.get("model_type") == NATIVE_MODEL_TYPE and bool(layers) and all(
        kind == "full_attention" for kind in layers)


def _refuse(name: str, what: str) -> ConfigError:
    return ConfigError("model", f"{name}: {what}", "a DeepSeek-OCR v1 checkpoint "
                       "(deepseek-ai/DeepSeek-OCR or a folder in its layout)")


def _get(section: dict, key: str, name: str, where: str):
    if key not in section:
        raise _refuse(name, f"its config.json has no {where}.{key}")
    return section[key]


def text_config(language: dict, name: str) -> dict:
    """The native text config of v1's ``language_config``: full causal attention."""
    for key, native, default in REQUIRED:
        if language.get(key, default) != native:
            raise _refuse(name, f"language_config.{key} is {language.get(key, default)!r}; "
                          f"transformers' native class runs only {native!r}")
    if language.get("topk_method", "greedy") not in TOPK_METHODS:
        raise _refuse(name, f"language_config.topk_method {language['topk_method']!r} is not "
                      f"one of {', '.join(TOPK_METHODS)}")
    text = {key: _get(language, key, name, "language_config") for key in _TEXT_KEYS}
    values = {**DECODER_DEFAULTS, **{k: language[k] for k in DECODER_DEFAULTS if k in language}}
    depth, dense = text["num_hidden_layers"], language.get("first_k_dense_replace", 0)
    text.update({k: v for k, v in values.items() if k != "rope_theta"},
                rope_parameters={"rope_type": "default", "rope_theta": values["rope_theta"]},
                mlp_layer_types=["sparse" if i >= dense else "dense" for i in range(depth)],
                layer_types=["full_attention"] * depth,
                # Unused by full attention; at the longest sequence, so nothing could slide.
                sliding_window=text["max_position_embeddings"], tie_word_embeddings=False)
    return text


def vision_config(vision: dict, name: str) -> dict:
    """The native vision config of v1's ``vision_config`` (SAM ViT-B, then CLIP-L)."""
    width = _get(vision, "width", name, "vision_config")
    sam = _get(width, SAM_KEY, name, "vision_config.width")
    clip = _get(width, CLIP_KEY, name, "vision_config.width")
    return {
        "sam_config": {
            "hidden_size": sam["width"], "num_hidden_layers": sam["layers"],
            "num_attention_heads": sam["heads"], "mlp_dim": 4 * sam["width"],
            "global_attn_indexes": sam["global_attn_indexes"],
            "downsample_channels": sam["downsample_channels"],
            "image_size": _get(vision, "image_size", name, "vision_config"),
            "patch_size": 16, "window_size": 14, "output_channels": 256},
        "encoder_config": {
            "hidden_size": clip["width"], "intermediate_size": 4 * clip["width"],
            "num_hidden_layers": clip["layers"], "num_attention_heads": clip["heads"],
            "image_size": clip["image_size"], "patch_size": clip["patch_size"]},
    }


def native_config(raw: dict, name: str, image_token_id: int):
    """transformers' ``UnlimitedOcrConfig`` of a v1 ``config.json`` (a dict)."""
    from transformers import UnlimitedOcrConfig

    text = text_config(_get(raw, "language_config", name, "config"), name)
    vision = vision_config(_get(raw, "vision_config", name, "config"), name)
    projector = raw.get("projector_config") or {}
    expected = vision["sam_config"]["downsample_channels"][-1] + \
        vision["encoder_config"]["hidden_size"]
    if (projector.get("projector_type"), projector.get("input_dim"),
            projector.get("n_embed")) != ("linear", expected, text["hidden_size"]):
        raise _refuse(name, f"projector_config must be linear from {expected} (SAM's and "
                      f"CLIP's features) to {text['hidden_size']}; got {projector}")
    try:
        return UnlimitedOcrConfig(vision_config=vision, text_config=text,
                                  image_token_id=image_token_id, tie_word_embeddings=False)
    except (TypeError, ValueError) as exc:  # the config classes validate their values
        raise _refuse(name, f"its config.json does not build ({exc})") from None


def read_config(location: str, name: str) -> dict:
    """``config.json`` of a folder or (through the Hub cache) a Hub id, as a dict."""
    from transformers.utils import cached_file

    try:
        path = cached_file(location, "config.json")
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DeepSynthError(f"cannot load model {name!r} from {location}: "
                             f"{str(exc).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise _refuse(name, "its config.json is not a JSON object")
    return raw


def ocr_tokenizer(location: str, v1: bool):
    """A DeepSeek-OCR model's tokenizer, never with remote code. v1's config.json names its
    remote code (``auto_map``): AutoTokenizer would read it and ask, on a terminal, whether
    to run that code; it is not read (the tokenizer's class is in its own config)."""
    from transformers import AutoTokenizer, PretrainedConfig

    return AutoTokenizer.from_pretrained(location, trust_remote_code=False,
                                         **({"config": PretrainedConfig()} if v1 else {}))


def is_v1_folder(folder: Path) -> bool:
    """A local folder whose config.json is in v1's layout."""
    try:
        raw = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(raw, dict) and is_v1_layout(raw)


def image_token_id(tokenizer, name: str) -> int:
    """v1 marks image positions with its tokenizer's ``<image>`` token (128815 in v1's
    vocabulary; v1's config.json does not name it)."""
    token = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    if token is None or token == tokenizer.unk_token_id:
        raise _refuse(name, f"its tokenizer has no {IMAGE_TOKEN} token")
    return int(token)


def folder_config(location: str, name: str, image_token: Callable[[], int]):
    """The native config of a v1 checkpoint (v1's layout, converted, with the image token
    ``image_token()`` gives; or a native folder saved by DeepSynth), its weights unread."""
    from transformers import AutoConfig

    raw = read_config(location, name)
    if is_v1_layout(raw):
        return native_config(raw, name, image_token())
    if is_full_attention_native(raw):
        return AutoConfig.from_pretrained(location)
    raise _refuse(name, f"its config.json (model_type {raw.get('model_type')!r}) is not "
                  f"DeepSeek-OCR v1's")


def load(location: str, name: str, tokenizer, dtype: Any, extra: dict, config=None):
    """The native model of a v1 checkpoint (v1's layout, or a native folder saved by
    DeepSynth), every weight loaded: a checkpoint lacking some is refused, naming them
    (transformers would fill them with random values and only log a warning). ``config``:
    the native config to load with (Unlimited-OCR's, :mod:`deepsynth.models.unlimited_ocr`)."""
    from transformers import UnlimitedOcrForConditionalGeneration

    if config is None:
        config = folder_config(location, name, lambda: image_token_id(tokenizer, name))
    try:
        model, report = UnlimitedOcrForConditionalGeneration.from_pretrained(
            location, config=config, dtype=dtype, output_loading_info=True, **extra)
    except OSError as exc:
        raise DeepSynthError(f"cannot load model {name!r} from {location}: "
                             f"{str(exc).splitlines()[0]}") from None
    missing = sorted(report["missing_keys"]) + sorted(report["mismatched_keys"] or ())
    if missing:
        raise _refuse(name, f"the checkpoint in {location} lacks {len(missing)} of the "
                      f"model's weights or has them in another shape (such as "
                      f"{', '.join(map(str, missing[:3]))}); it is incomplete or of "
                      f"another model")
    return model
