"""Pages as each model family's image processor prepares them, kept uint8 until the model.

:func:`deepsynth.render.tokens.page_view` decides how a page is prepared (global view size,
pad or stretch, crop grid) and how many image tokens it becomes; :class:`PageFormat` carries
that out with Pillow's bicubic resampling, as transformers' ``DeepseekOcr2ImageProcessorPil``
does (and v1's own code: ``UnlimitedOcrImageProcessor`` needs torchvision, which DeepSynth
does not install). Pages stay grayscale uint8 (one channel) in the loader workers; the
normalization, ``x / 127.5 - 1`` copied to 3 channels, is the processors' rescale by 1/255
and normalize by mean and std 0.5, applied in :func:`pixel_values` where the model runs.
``tests/test_processor_parity.py`` proves the tensors and token counts equal the processors'.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from deepsynth.render.tokens import PAD_GRAY, PageView, page_view, views_of

BICUBIC = Image.Resampling.BICUBIC


def _resized(page: Image.Image, width: int, height: int) -> Image.Image:
    return page if page.size == (width, height) else page.resize((width, height), BICUBIC)


def global_view(page: Image.Image, view: PageView) -> Image.Image:
    """The page fitted into ``view.size`` px, its longer side first (rounded as the
    processors round), centered on gray; or stretched to the square when ``view.pad`` is
    off (v1 at 640 px or less in global mode)."""
    size = view.size
    if not view.pad:
        return _resized(page, size, size)
    width, height = page.size
    scale = size / max(width, height)
    fitted = _resized(page, round(width * scale), round(height * scale))
    if fitted.size == (size, size):
        return fitted
    canvas = Image.new("L", (size, size), PAD_GRAY)
    canvas.paste(fitted, ((size - fitted.width) // 2, (size - fitted.height) // 2))
    return canvas


def local_crops(page: Image.Image, view: PageView) -> np.ndarray:
    """The page resized to the crop grid, cut into tiles row by row: uint8 [n, tile, tile]."""
    tile = view.tile
    grid = np.asarray(_resized(page, tile * view.columns, tile * view.rows), dtype=np.uint8)
    tiles = grid.reshape(view.rows, tile, view.columns, tile).transpose(0, 2, 1, 3)
    return np.require(tiles.reshape(view.crops, tile, tile), requirements=("C", "W"))


@dataclass(frozen=True)
class PageFormat:
    """How a model of ``family`` at ``image_size`` sees pages in image ``mode``."""

    family: str
    image_size: int
    mode: str = "global"

    def view(self, width: int, height: int) -> PageView:
        return page_view(self.family, self.image_size, self.mode, width, height)

    def tokens(self, width: int, height: int) -> int:
        return self.view(width, height).tokens

    def prepare(self, page: Image.Image) -> dict:
        """One page (a grayscale image): its global view (uint8 [S, S]), its image tokens
        and, in crops mode, its crops (uint8 [n, T, T], n possibly 0) and, for a family
        that needs it (v1), its grid ``[columns, rows]``."""
        view = self.view(*page.size)
        prepared = {"page": torch.from_numpy(np.array(global_view(page, view), np.uint8)),
                    "tokens": view.tokens}
        if self.mode == "crops":
            tile = view.tile
            prepared["crops"] = torch.from_numpy(local_crops(page, view)) if view.crops \
                else torch.empty((0, tile, tile), dtype=torch.uint8)
            if views_of(self.family).row_newlines:
                prepared["grid"] = [max(view.columns, 1), max(view.rows, 1)]
        return prepared

    def prepare_all(self, pages: list[Image.Image]) -> dict:
        """An example's page entries: ``pages``, ``page_tokens`` and, in crops mode,
        ``crops`` (and ``crop_grids``), one per page."""
        prepared = [self.prepare(page) for page in pages]
        entries = {"pages": [p["page"] for p in prepared],
                   "page_tokens": [p["tokens"] for p in prepared]}
        if self.mode == "crops":
            entries["crops"] = [p["crops"] for p in prepared]
            if prepared and "grid" in prepared[0]:
                entries["crop_grids"] = [p["grid"] for p in prepared]
        return entries


def stack_pages(examples: list[dict]) -> dict:
    """The batch's pages: ``pages`` uint8 [N, 1, S, S]; with crops, ``crops`` uint8
    [M, 1, T, T] (all pages' crops in order), ``crops_per_page`` and ``crop_grids``."""
    pages = [p for e in examples for p in e.get("pages", ())]
    if not pages:
        return {}
    batch = {"pages": torch.stack(pages).unsqueeze(1)}
    if any("crops" in e for e in examples):
        crops = [c for e in examples for c in e.get("crops", ())]
        batch["crops_per_page"] = [len(c) for c in crops]
        if any(len(c) for c in crops):
            batch["crops"] = torch.cat([c for c in crops if len(c)]).unsqueeze(1)
        if any("crop_grids" in e for e in examples):
            batch["crop_grids"] = [g for e in examples for g in e["crop_grids"]]
    return batch


def pixel_values(pages: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """uint8 [N, 1, H, W] to the model's normalized 3-channel input in its dtype."""
    return (pages.to(dtype) / 127.5 - 1.0).expand(-1, 3, -1, -1)


def vision_inputs(batch: dict, dtype: torch.dtype, device=None) -> dict:
    """The model's image arguments of a batch (none without pages): ``pixel_values`` and,
    when some page has crops, ``pixel_values_local``, ``num_local_patches`` and, for v1,
    ``patches_grid``."""
    if "pages" not in batch:
        return {}
    inputs = {"pixel_values": pixel_values(batch["pages"].to(device), dtype)}
    if "crops" in batch:
        inputs["pixel_values_local"] = pixel_values(batch["crops"].to(device), dtype)
        inputs["num_local_patches"] = list(batch["crops_per_page"])
        if "crop_grids" in batch:
            inputs["patches_grid"] = [list(g) for g in batch["crop_grids"]]
    return inputs
