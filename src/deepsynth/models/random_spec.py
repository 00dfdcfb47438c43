"""``random:NAME[?layers=N]``: a real model's architecture at its real size, with random weights.

The architecture is shipped as package data (``resources/model_configs/NAME.json``: the
published model's config and its family), so nothing is downloaded: DeepSeek-OCR-2
(``deepseek-ocr-2``, transformers' DeepseekOcr2Config) builds at its 3,389,119,360
parameters, DeepSeek-OCR v1 (``deepseek-ocr``, v1's own config.json, converted as a v1 folder
is: :mod:`deepsynth.models.deepseek_ocr_v1`) at 3,335,504,128, Unlimited-OCR
(``unlimited-ocr``, its checkpoint's config.json, converted with its sliding window:
:mod:`deepsynth.models.unlimited_ocr`) at 3,335,504,128 too (v1's tensors), or any of them
with its text decoder cut to its first ``N`` layers. For measuring memory and speed, and for testing
training at the real dimensions; the weights are random (seeded, so every build is the same)
and mean nothing.

This module reads no weights and imports torch and transformers only when building.
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources
from typing import Any

from deepsynth.errors import ConfigError

PREFIX = "random:"
REAL_MODELS: tuple[str, ...] = ("deepseek-ocr-2", "deepseek-ocr", "unlimited-ocr")
# Families whose checkpoints keep v1's layout (the decoder under language_config).
V1_LAYOUT = ("deepseek_ocr", "unlimited_ocr")
SEED = 1234
# The values are generated in bfloat16 (the published checkpoint's dtype) whatever the dtype
# asked for, then cast: a float32 build holds the same numbers as a bfloat16 one, so an adapter
# trained on one base reloads onto the same base (``load_model`` rebuilds it from the spec).
BUILD_DTYPE = "bfloat16"
_QUERY = re.compile(r"layers=([0-9]{1,4})")


@cache
def _resource(name: str) -> dict:
    path = resources.files("deepsynth.resources") / "model_configs" / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8"))


def family(name: str) -> str:
    """The model family of ``name`` (``deepseek_ocr2``, ``deepseek_ocr``, ``unlimited_ocr``)."""
    return _resource(name)["family"]


def _decoder(config: dict, name: str) -> dict:
    # v1's config.json keeps the decoder under language_config; transformers' under text_config.
    return config["language_config" if family(name) in V1_LAYOUT else "text_config"]


def real_depth(name: str) -> int:
    """The published model's text decoder layers."""
    return int(_decoder(_resource(name)["config"], name)["num_hidden_layers"])


def allowed_specs() -> str:
    """The ``random:`` specs there are, as an error message's ``allowed``."""
    return " or ".join(f"{PREFIX}{n}[?layers=N] with N 1-{real_depth(n)}" for n in REAL_MODELS)


def parse_random_spec(spec: str) -> tuple[str, int | None] | None:
    """``random:NAME`` -> (NAME, None), ``random:NAME?layers=N`` -> (NAME, N); None when
    ``spec`` is no random spec. A malformed one is a ConfigError naming ``model``."""
    if not isinstance(spec, str) or not spec.startswith(PREFIX):
        return None
    name, question, query = spec[len(PREFIX):].partition("?")
    if name not in REAL_MODELS:
        raise ConfigError("model", f"{spec!r} names no real model ({', '.join(REAL_MODELS)})",
                          allowed_specs())
    if not question:
        return name, None
    match = _QUERY.fullmatch(query)
    depth = real_depth(name)
    if not match or not 1 <= int(match.group(1)) <= depth:
        raise ConfigError("model", f"{spec!r}: takes one option, layers=N with N from 1 "
                          f"to {depth} (the real decoder's depth)", allowed_specs())
    return name, int(match.group(1))


def check_model_spec(value: object) -> None:
    """The ``check`` of a config's ``model``: a malformed ``random:`` spec is refused as the
    config is parsed (raising, so the error says what is allowed); presets and folders are
    checked where they load."""
    parse_random_spec(value)


def config_dict(name: str, layers: int | None = None) -> dict[str, Any]:
    """The config as plain JSON values (a copy), the decoder cut to ``layers``."""
    config = json.loads(json.dumps(_resource(name)["config"]))
    if layers is not None:
        text = _decoder(config, name)
        if not 1 <= layers <= text["num_hidden_layers"]:
            raise ConfigError("model", f"layers must be 1-{text['num_hidden_layers']}; got "
                              f"{layers}", allowed_specs())
        text["num_hidden_layers"] = layers
        if "mlp_layer_types" in text:  # v1 derives them from first_k_dense_replace
            text["mlp_layer_types"] = text["mlp_layer_types"][:layers]  # layer 0 stays dense
        if "num_hidden_layers" in config:  # v1 repeats its decoder's keys at the top level
            config["num_hidden_layers"] = layers
    return config


def real_config(name: str, layers: int | None = None, window: int | None = None):
    """The transformers config of ``name`` (DeepseekOcr2Config, or UnlimitedOcrConfig for
    v1 and Unlimited-OCR), decoder cut to ``layers``; Unlimited-OCR's sliding ``window``
    tokens (default its checkpoint's)."""
    from transformers import DeepseekOcr2Config

    from deepsynth.models import deepseek_ocr_v1, unlimited_ocr

    if name not in REAL_MODELS:
        raise ConfigError("model", f"{name!r} is no real model", ", ".join(REAL_MODELS))
    if family(name) == "deepseek_ocr":
        return deepseek_ocr_v1.native_config(config_dict(name, layers), f"{PREFIX}{name}",
                                             deepseek_ocr_v1.V1_IMAGE_TOKEN_ID)
    if family(name) == unlimited_ocr.FAMILY:
        return unlimited_ocr.native_config(config_dict(name, layers), f"{PREFIX}{name}",
                                           deepseek_ocr_v1.V1_IMAGE_TOKEN_ID, window)
    return DeepseekOcr2Config(**config_dict(name, layers))


def model_class(name: str):
    """The transformers class that builds ``name``."""
    import transformers

    return getattr(transformers, "UnlimitedOcrForConditionalGeneration"
                   if family(name) in V1_LAYOUT else "DeepseekOcr2ForConditionalGeneration")


def meta_model(name: str, layers: int | None = None):
    """The model built on the meta device: shapes and dtypes, no memory, no weights."""
    import torch

    config = real_config(name, layers)
    with torch.device("meta"):
        return model_class(name)(config)


def random_model(name: str, layers: int | None, tokenizer, dtype, window: int | None = None):
    """The architecture with seeded random weights in ``dtype``, its special tokens those of
    ``tokenizer`` (the embeddings keep the real vocabulary's rows). The router stays float32
    (the class creates it so; transformers keeps it so when loading in half precision)."""
    import torch

    from deepsynth.models.meta_build import build_on_meta

    config = real_config(name, layers, window)
    text = config.text_config
    text.bos_token_id, text.eos_token_id = tokenizer.bos_token_id, tokenizer.eos_token_id
    text.pad_token_id = tokenizer.pad_token_id
    config.image_token_id = tokenizer.convert_tokens_to_ids("<image>")
    # SAM's default initializer_range (1e-10) gives every image the same features.
    config.vision_config.sam_config.initializer_range = text.initializer_range
    build = getattr(torch, BUILD_DTYPE)
    # Built without weights (torch's own init never runs), so no float32 copy of 3.4B
    # parameters is ever made.
    model = build_on_meta(lambda: model_class(name)(config), build)
    model.to_empty(device="cpu")
    with torch.random.fork_rng():  # the caller's random state must not depend on this build
        torch.manual_seed(SEED)
        model.initialize_weights()  # the class's init, once (rotary buffers included)
    for parameter in model.parameters():  # one tensor at a time: no second copy of the model
        if parameter.dtype == build and dtype != build:
            parameter.data = parameter.data.to(dtype)
    generation = model.generation_config
    generation.bos_token_id, generation.eos_token_id = text.bos_token_id, text.eos_token_id
    generation.pad_token_id = text.pad_token_id
    return model
