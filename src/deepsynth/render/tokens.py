"""Image tokens per page, and text tokens: the one home of both counts.

A page reaches a DeepSeek-OCR model as that family's transformers image processor prepares
it (``DeepseekOcr2ImageProcessor``, ``UnlimitedOcrImageProcessor`` for v1): a **global view**,
the page resized to the model's image size keeping its aspect ratio and padded to a square
with gray 127, and in image mode ``crops`` (the processors' default) also **local crops**:
the page resized to a grid of tiles chosen by its aspect ratio (2 to 6 tiles of 768 px for
DeepSeek-OCR-2, of 640 px for v1; 2 to 32 of 640 px for Unlimited-OCR), when its longer side
exceeds one tile. :func:`page_view`
is that plan for one page; ``deepsynth.training.pages`` carries it out and
``tests/test_processor_parity.py`` proves both equal transformers' processors.

Tokens: DeepSeek-OCR-2's vision encoder answers each view with its learned queries, 144
(12 x 12) for a view of up to 768 px and 256 above, plus one view separator per page: 257
for a 1024 px global view, +144 per crop. v1 lays a view's q x q feature grid (16 px SAM
patches, downsampled 4x) out with a newline token after each row, q(q+1): 272 at 1024 px;
its crops form one (rows x q) by (columns x q) grid, each row ended by a newline too; one
view separator per page: 273 for a 1024 px global view. Unlimited-OCR (v1's vision side,
the same processor) lays pages out as v1 does; several pages follow each other in the
sequence, each with its own rows, newlines and separator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from deepsynth.errors import ConfigError, ConfigRefused

IMAGE_MODES = ("global", "crops")
PAD_GRAY = 127  # the processors' background_color (the images' mean, 0.5 x 255)
PATCH_SIZE = 16  # SAM's patches (both families; the processors' patch_size)
DOWNSAMPLE = 4  # SAM's neck (the processors' downsample_ratio)
REAL_IMAGE_SIZE = 1024  # both published models' global view (their SAM image_size)
OCR2_SMALL_QUERIES, OCR2_LARGE_QUERIES = 144, 256  # its query_768_ and query_1024_resolution


@dataclass(frozen=True)
class FamilyViews:
    """What a family's image processor does with a page (its defaults), and how its model
    lays the views' features out."""

    label: str
    tile: int  # tile_size: the local crops' side
    min_crops: int
    max_crops: int
    row_newlines: bool  # a newline token after each row of features (needs the crop grid)
    stretch_up_to: int  # in global mode, a view this small or smaller is stretched to a
    #                     square, not padded (UnlimitedOcr's maximum_pad_value); 0: never


# DeepSeek-OCR-2: DeepseekOcr2ImageProcessor's defaults (768 px tiles, 2 to 6). v1: tiles of
# 640 px as UnlimitedOcrImageProcessor and v1's own code; at most 6, v1's own MAX_CROPS
# (UnlimitedOcrImageProcessor's 32 is Unlimited-OCR's, a model trained for long inputs).
# Unlimited-OCR: UnlimitedOcrImageProcessor's defaults (640 px tiles, 2 to 32).
VIEWS = {
    "deepseek_ocr2": FamilyViews("DeepSeek-OCR-2", 768, 2, 6, False, 0),
    "deepseek_ocr": FamilyViews("DeepSeek-OCR v1", 640, 2, 6, True, 640),
    "unlimited_ocr": FamilyViews("Unlimited-OCR", 640, 2, 32, True, 640),
}


@dataclass(frozen=True)
class PageView:
    """How one page is prepared: its global view (``size`` x ``size``, padded or
    stretched), its crop grid (``columns`` x ``rows`` tiles of ``tile`` px; none: 0 x 0),
    and the image tokens the model gives it."""

    size: int
    pad: bool
    tile: int
    columns: int
    rows: int
    tokens: int

    @property
    def crops(self) -> int:
        return self.columns * self.rows


def views_of(family: str) -> FamilyViews:
    if family not in VIEWS:
        raise ValueError(f"no page views for model family {family!r}")
    return VIEWS[family]


def crop_grid(width: int, height: int, tile: int, least: int, most: int) -> tuple[int, int]:
    """(columns, rows) of tiles whose aspect ratio is closest to the page's, between
    ``least`` and ``most`` tiles; on a tie the larger grid, while the page covers more than
    half of it. transformers' ``get_optimal_tiled_canvas``, the same in both families'
    processors (tests/test_processor_parity.py compares them on many sizes); written here
    because importing it pulls in transformers, which the renderer's workers never load."""
    grids = sorted(((c, r) for c in range(1, most + 1) for r in range(1, most + 1)
                    if least <= c * r <= most), key=lambda grid: grid[0] * grid[1])
    aspect, area = width / height, width * height
    best, best_difference = (1, 1), float("inf")
    for columns, rows in grids:
        difference = abs(aspect - columns / rows)
        if difference < best_difference:
            best, best_difference = (columns, rows), difference
        elif difference == best_difference and area > 0.5 * tile * tile * columns * rows:
            best = (columns, rows)
    return best


def feature_side(size: int) -> int:
    """The side of a view's feature grid: SAM's patches, downsampled by its neck."""
    return math.ceil(size // PATCH_SIZE / DOWNSAMPLE)


def _ocr2_view_tokens(size: int) -> int:
    return OCR2_SMALL_QUERIES if feature_side(size) ** 2 <= OCR2_SMALL_QUERIES \
        else OCR2_LARGE_QUERIES


def _tokens(family: str, size: int, tile: int, columns: int, rows: int) -> int:
    if not VIEWS[family].row_newlines:
        return _ocr2_view_tokens(size) + columns * rows * _ocr2_view_tokens(tile) + 1
    side, local = feature_side(size), feature_side(tile)
    tokens = side * (side + 1) + 1
    if columns * rows:
        tokens += rows * local * (columns * local + 1)
    return tokens


def page_view(family: str, image_size: int, mode: str = "global",
              width: int | None = None, height: int | None = None) -> PageView:
    """The plan for a ``width`` x ``height`` page (square ``image_size`` if not given) fed
    to a ``family`` model of ``image_size`` in image ``mode``."""
    views = views_of(family)
    if mode not in IMAGE_MODES:
        raise ValueError(f"image mode {mode!r} is not one of {', '.join(IMAGE_MODES)}")
    width, height = width or image_size, height or image_size
    columns = rows = 0
    if mode == "crops" and max(width, height) > views.tile:
        columns, rows = crop_grid(width, height, views.tile, views.min_crops, views.max_crops)
    pad = not (mode == "global" and image_size <= views.stretch_up_to)
    return PageView(image_size, pad, views.tile, columns, rows,
                    _tokens(family, image_size, views.tile, columns, rows))


def page_tokens(family: str, image_size: int, mode: str = "global",
                width: int | None = None, height: int | None = None) -> int:
    """Image tokens of one page: what the model's features and the ``input_ids`` agree on.
    The estimator's count too."""
    return page_view(family, image_size, mode, width, height).tokens


def v1_view_tokens(image_size: int) -> int:
    """DeepSeek-OCR v1's global view of an ``image_size`` page: q(q+1)+1."""
    return page_tokens("deepseek_ocr", image_size)


def row_vision_tokens(width: int, height: int) -> int:
    """A dataset row's ``vision_tokens`` per page: DeepSeek-OCR-2 (the default model) at
    its real size in the default image mode, what training with it feeds. (The count of
    a given model is :func:`page_tokens`.)"""
    return page_tokens("deepseek_ocr2", REAL_IMAGE_SIZE, "global", width, height)


def vision_token_table(width: int, height: int) -> list[dict]:
    """Image tokens of a ``width`` x ``height`` page for each family's published model and
    each image mode: ``[{"model": "DeepSeek-OCR-2", "global": 257, "crops": 833}, ...]``."""
    return [{"model": views.label, **{mode: page_tokens(family, REAL_IMAGE_SIZE, mode, width,
                                                        height) for mode in IMAGE_MODES}}
            for family, views in VIEWS.items()]


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
