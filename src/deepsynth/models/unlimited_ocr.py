"""Unlimited-OCR (``baidu/Unlimited-OCR``) without its remote code.

Unlimited-OCR is DeepSeek-OCR v1's architecture and checkpoint layout (the same vision side,
the same DeepSeek-V2 MoE decoder with multi-head attention, the same weight names: see
:mod:`deepsynth.models.deepseek_ocr_v1`) trained for long documents: a 32,768-token context
and *reference sliding-window attention* (R-SWA), where a generated token attends to every
image and prompt token (the prefill) and to the last ``sliding_window`` generated tokens, so
the KV cache stays the prefill plus a constant window while dozens of pages are transcribed.
Its checkpoint (model_type ``unlimited-ocr``, ``UnlimitedOCRForCausalLM``) is read into
transformers' native ``UnlimitedOcrForConditionalGeneration`` with
``reference_sliding_attention`` on every decoder layer and the checkpoint's window
(``sliding_window_size``, 128).

The window acts in cached decoding only. In one forward pass without a cache (training,
teacher forcing) transformers' R-SWA mask has no prefill length and every token attends to
every earlier one: plain causal attention, whatever the window
(``tests/test_unlimited_ocr.py`` proves the logits equal for windows 1 and 4096). So the
configurable window (``sliding_window``) changes generation (evaluation, summarize) and
nothing in training.
"""

from __future__ import annotations

from collections.abc import Callable

from deepsynth.errors import ConfigError
from deepsynth.models import deepseek_ocr_v1

FAMILY = "unlimited_ocr"
MODEL_TYPE = "unlimited-ocr"  # the original checkpoint's (transformers' is unlimited_ocr)
ARCHITECTURE = "UnlimitedOCRForCausalLM"
LAYER_TYPE = "reference_sliding_attention"
DEFAULT_WINDOW = 128  # the checkpoint's sliding_window_size
MAX_WINDOW = 32768  # the checkpoint's context: a longer window could never slide
ALLOWED = "an Unlimited-OCR checkpoint (baidu/Unlimited-OCR or a folder in its layout)"


def is_original_layout(raw: dict) -> bool:
    """A config.json as Unlimited-OCR's checkpoint writes it (v1's layout, its own names)."""
    return "language_config" in raw and (
        raw.get("model_type") == MODEL_TYPE or ARCHITECTURE in (raw.get("architectures") or ()))


def is_sliding_native(raw: dict) -> bool:
    """A native ``unlimited_ocr`` config.json whose layers slide a reference window (an
    Unlimited-OCR model saved by transformers or DeepSynth; v1 saved natively has none)."""
    layers = (raw.get("text_config") or {}).get("layer_types") or ()
    return raw.get("model_type") == deepseek_ocr_v1.NATIVE_MODEL_TYPE and LAYER_TYPE in layers


def window_of(raw: dict) -> int:
    """The checkpoint's window: ``sliding_window_size`` (or ``sliding_window``) of its
    decoder config, or of the top level, else the published 128."""
    for section in (raw.get("language_config") or {}, raw):
        for key in ("sliding_window_size", "sliding_window"):
            if isinstance(section.get(key), int) and not isinstance(section.get(key), bool):
                return section[key]
    return DEFAULT_WINDOW


def native_config(raw: dict, name: str, image_token_id: int, window: int | None = None):
    """transformers' ``UnlimitedOcrConfig`` of an Unlimited-OCR ``config.json`` (a dict):
    v1's conversion, then R-SWA on every layer with ``window`` (default: the checkpoint's)."""
    try:
        config = deepseek_ocr_v1.native_config(raw, name, image_token_id)
    except ConfigError as exc:
        raise ConfigError(exc.field, exc.message, ALLOWED) from None
    text = config.text_config
    text.layer_types = [LAYER_TYPE] * text.num_hidden_layers
    text.sliding_window = check_window(window if window is not None else window_of(raw))
    return config


def check_window(value: object, field: str = "sliding_window") -> int:
    """A window of 1 to :data:`MAX_WINDOW` tokens; anything else a ConfigError naming
    ``field``."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_WINDOW:
        raise ConfigError(field, f"must be a whole number of tokens from 1 to {MAX_WINDOW}; "
                          f"got {value!r}", f"1-{MAX_WINDOW}")
    return value


def set_window(model, window: int) -> None:
    """Generation with ``model`` slides ``window`` tokens: the cache and the masks read the
    text config's ``sliding_window`` as they are built, on every ``generate``."""
    model.config.text_config.sliding_window = check_window(window)


def window(model) -> int | None:
    """The window ``model`` slides; None for a model without R-SWA (v1, full attention)."""
    text = getattr(model.config, "text_config", None)
    if text is None or LAYER_TYPE not in (getattr(text, "layer_types", None) or ()):
        return None
    return int(text.sliding_window)


def folder_config(location: str, name: str, image_token: Callable[[], int],
                  window: int | None = None):
    """The native config of an Unlimited-OCR checkpoint (its own layout, converted, with the
    image token ``image_token()`` gives; or a native folder), its window ``window`` if
    given; its weights unread."""
    from transformers import AutoConfig

    raw = deepseek_ocr_v1.read_config(location, name)
    if is_original_layout(raw):
        return native_config(raw, name, image_token(), window)
    if is_sliding_native(raw):
        config = AutoConfig.from_pretrained(location)
        if window is not None:
            config.text_config.sliding_window = check_window(window)
        return config
    raise ConfigError("model", f"{name}: its config.json (model_type "
                      f"{raw.get('model_type')!r}) is not Unlimited-OCR's", ALLOWED)


def load(location: str, name: str, tokenizer, dtype, extra: dict, window: int | None = None):
    """The native model of an Unlimited-OCR checkpoint (its own layout, or a native folder
    saved by transformers or DeepSynth), every weight loaded (as v1's loader checks), its
    window ``window`` if given."""
    config = folder_config(location, name,
                           lambda: deepseek_ocr_v1.image_token_id(tokenizer, name), window)
    try:
        return deepseek_ocr_v1.load(location, name, tokenizer, dtype, extra, config=config)
    except ConfigError as exc:
        raise ConfigError(exc.field, exc.message, ALLOWED) from None
