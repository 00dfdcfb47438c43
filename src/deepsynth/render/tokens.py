"""Text-token and vision-token counts: the compression figures of a rendered document.

DeepSeek-OCR-2 encodes each page with a global view of 145 tokens up to 768 px and 257 tokens
at 1024 px and above; sizes in between are processed at 1024 px. DeepSeek-OCR v1 lays its
global view out as transformers' ``UnlimitedOcrProcessor`` and ``UnlimitedOcrModel`` do: a
q x q grid of features (SAM's 16 px patches, downsampled 4x by its neck), a newline token
after each row and a view separator, q(q+1)+1 tokens: 273 at 1024 px. Unlimited-OCR (v1's
vision side, the same processor) lays pages out the same way; several pages follow each
other in the sequence, each with its own rows, newlines and separator.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Protocol

from deepsynth.errors import ConfigError, ConfigRefused

SMALL_VIEW_MAX_SIDE = 768
SMALL_VIEW_TOKENS = 145
LARGE_VIEW_TOKENS = 257
# DeepSeek-OCR v1: UnlimitedOcrProcessor's patch_size and downsample_ratio (v1's SAM and neck).
V1_PATCH_SIZE = 16
V1_DOWNSAMPLE = 4


def vision_tokens_per_page(width: int, height: int) -> int:
    return SMALL_VIEW_TOKENS if max(width, height) <= SMALL_VIEW_MAX_SIDE else LARGE_VIEW_TOKENS


def v1_view_tokens(image_size: int, patch_size: int = V1_PATCH_SIZE) -> int:
    """DeepSeek-OCR v1's global view of an ``image_size`` page: the count of
    ``UnlimitedOcrProcessor.replace_image_token`` (tests/test_ocr_v1.py compares both, and
    the features the model produces)."""
    side = math.ceil(image_size // patch_size / V1_DOWNSAMPLE)
    return side * (side + 1) + 1


def page_tokens(family: str, image_size: int) -> int:
    """Image tokens of one square page's global view for a model family."""
    if family in ("deepseek_ocr", "unlimited_ocr"):
        return v1_view_tokens(image_size)
    return vision_tokens_per_page(image_size, image_size)


def _is_cjk(code: int) -> bool:
    return (0x3040 <= code <= 0x30FF or 0x3400 <= code <= 0x4DBF or 0x4E00 <= code <= 0x9FFF
            or 0xAC00 <= code <= 0xD7AF or 0xF900 <= code <= 0xFAFF or 0x20000 <= code <= 0x2FFFF)


class TokenCounter(Protocol):
    name: str

    def count(self, text: str) -> int: ...


class EstimatedTokens:
    """About four characters per token for alphabetic text, one per CJK character."""

    name = "estimate"

    def count(self, text: str) -> int:
        if text.isascii():
            return math.ceil(len(text) / 4)
        cjk = sum(1 for c in text if _is_cjk(ord(c)))
        return math.ceil((len(text) - cjk) / 4) + cjk


class TokenizerTokens:
    """Exact counts with a local ``tokenizers`` tokenizer (a tokenizer.json or its folder)."""

    def __init__(self, path: str):
        from tokenizers import Tokenizer  # only needed when a tokenizer is given

        file = Path(path).expanduser()
        if file.is_dir():
            file = file / "tokenizer.json"
        if not file.is_file():
            raise ConfigError("tokenizer", f"must be a tokenizer.json file or a folder holding "
                              f"one; not found: {path}")
        try:
            self._tokenizer = Tokenizer.from_file(str(file))
        except Exception as exc:  # the tokenizers library raises its own exception types
            raise ConfigRefused("tokenizer", f"{path} is not a readable tokenizer.json "
                                f"({type(exc).__name__})", "a tokenizer.json file or folder") \
                from None
        self.name = str(file)

    def count(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)


def token_counter(tokenizer: str | None) -> TokenCounter:
    return TokenizerTokens(tokenizer) if tokenizer else EstimatedTokens()
