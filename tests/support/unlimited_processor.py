"""transformers' ``UnlimitedOcrImageProcessor`` (DeepSeek-OCR v1's image processor) run
without torchvision, as the reference the parity tests compare DeepSynth's pages with.

Its module imports torchvision at the top, which DeepSynth does not install (torchvision
breaks this torch build), so it cannot be imported. This loads the module's own source with
that one import line taken out and replaces only the torchvision primitives it calls:
``resize`` by Pillow's bicubic (what v1's own code and DeepSeek-OCR-2's PIL processor use),
``normalize`` by torchvision's formula ``(x - mean) / std`` and ``pad`` by a constant fill.
Everything else runs as transformers wrote it: the global view's size, the pad-or-stretch
rule (``maximum_pad_value``), the crop grid, the crops' order, ``num_local_patches`` and
``patches_grid``.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import torch
import transformers.models.unlimited_ocr as package
from PIL import Image
from transformers.image_utils import (
    IMAGENET_STANDARD_MEAN,
    IMAGENET_STANDARD_STD,
    SizeDict,
)

TORCHVISION = "from torchvision.transforms.v2 import functional as tvF\n"
SOURCE = Path(package.__file__).parent / "image_processing_unlimited_ocr.py"


def _pad(images: torch.Tensor, padding: list[int], fill: list[int]) -> torch.Tensor:
    left, top, right, bottom = padding
    height, width = images.shape[-2:]
    out = torch.empty((*images.shape[:-2], top + height + bottom, left + width + right),
                      dtype=images.dtype)
    out[...] = torch.tensor(fill, dtype=images.dtype).view(-1, 1, 1)
    out[..., top:top + height, left:left + width] = images
    return out


def _module() -> types.ModuleType:
    source = SOURCE.read_text(encoding="utf-8")
    assert source.count(TORCHVISION) == 1, "transformers changed its torchvision import"
    module = types.ModuleType(f"{package.__name__}._without_torchvision")
    module.__package__, module.__file__ = package.__name__, str(SOURCE)
    sys.modules[module.__name__] = module  # transformers' docstring tools look it up there
    code = compile(source.replace(TORCHVISION, ""), str(SOURCE), "exec")
    exec(code, module.__dict__)  # noqa: S102 (transformers' own source file)
    module.tvF = types.SimpleNamespace(pad=_pad)
    return module


MODULE = _module()


class UnlimitedOcrWithoutTorchvision(MODULE.UnlimitedOcrImageProcessor):
    def resize(self, images: torch.Tensor, size: SizeDict, resample=None, **kwargs):
        flat = images.reshape(-1, images.shape[-2], images.shape[-1]).numpy()
        resized = [np.asarray(Image.fromarray(channel).resize(
            (size.width, size.height), Image.Resampling.BICUBIC)) for channel in flat]
        return torch.from_numpy(np.stack(resized)).reshape(
            *images.shape[:-2], size.height, size.width)

    def normalize(self, image: torch.Tensor, mean, std, inplace: bool = False, **kwargs):
        mean = torch.as_tensor(mean, dtype=image.dtype).view(-1, 1, 1)
        std = torch.as_tensor(std, dtype=image.dtype).view(-1, 1, 1)
        return (image - mean) / std


def preprocess(pages: list[Image.Image], size: int, crop_to_patches: bool,
               max_patches: int = 6) -> dict:
    """The processor's ``_preprocess`` of grayscale pages (converted to RGB as its
    ``do_convert_rgb`` does) for a model of ``size`` px, v1's 640 px tiles."""
    processor = UnlimitedOcrWithoutTorchvision()
    images = [torch.from_numpy(np.array(page.convert("RGB"))).permute(2, 0, 1).contiguous()
              for page in pages]
    return processor._preprocess(
        images, size=SizeDict(height=size, width=size), crop_to_patches=crop_to_patches,
        min_patches=2, max_patches=max_patches, tile_size=640, maximum_pad_value=640,
        resample=None, do_rescale=True, rescale_factor=1 / 255, do_normalize=True,
        image_mean=tuple(IMAGENET_STANDARD_MEAN), image_std=tuple(IMAGENET_STANDARD_STD),
        disable_grouping=True, return_tensors=None)
