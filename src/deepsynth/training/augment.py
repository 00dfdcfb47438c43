"""Training-time augmentation that keeps text legible: small rotation and perspective,
brightness/contrast, slight blur or noise. Never flips, never crops text away."""

from __future__ import annotations

import random

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter


class Augmenter:
    """Applies each transform with probability ``p``; strengths are deliberately small."""

    def __init__(self, seed: int, p: float = 0.5, max_degrees: float = 1.5,
                 max_warp: float = 0.015, max_tone: float = 0.15, max_blur: float = 0.6,
                 noise_std: float = 6.0):
        self.rng = random.Random(seed)
        self.p, self.max_degrees, self.max_warp = p, max_degrees, max_warp
        self.max_tone, self.max_blur, self.noise_std = max_tone, max_blur, noise_std

    def _maybe(self) -> bool:
        return self.rng.random() < self.p

    def _perspective(self, page: Image.Image) -> Image.Image:
        w, h = page.size
        jitter = [self.rng.uniform(-self.max_warp, self.max_warp) * s for s in (w, h) * 4]
        corners = [0, 0, w, 0, w, h, 0, h]
        source = [c + j for c, j in zip(corners, jitter, strict=True)]
        coefficients = _perspective_coefficients(corners, source)
        return page.transform(page.size, Image.Transform.PERSPECTIVE, coefficients,
                              Image.Resampling.BILINEAR, fillcolor=255)

    def __call__(self, page: Image.Image) -> Image.Image:
        if self._maybe():
            page = page.rotate(self.rng.uniform(-self.max_degrees, self.max_degrees),
                               Image.Resampling.BILINEAR, fillcolor=255)
        if self._maybe():
            page = self._perspective(page)
        if self._maybe():
            page = ImageEnhance.Brightness(page).enhance(1 + self.rng.uniform(-1, 1)
                                                         * self.max_tone)
            page = ImageEnhance.Contrast(page).enhance(1 + self.rng.uniform(-1, 1)
                                                       * self.max_tone)
        if self._maybe():
            page = page.filter(ImageFilter.GaussianBlur(self.rng.uniform(0.2, self.max_blur)))
        if self._maybe():
            noise = np.random.default_rng(self.rng.getrandbits(32)).normal(
                0, self.noise_std, (page.height, page.width))
            page = Image.fromarray(np.clip(np.asarray(page, dtype=np.float32) + noise, 0, 255)
                                   .astype(np.uint8), "L")
        return page


def _perspective_coefficients(target: list[float], source: list[float]) -> list[float]:
    """The 8 coefficients mapping output corners ``target`` to input corners ``source``."""
    rows = []
    for i in range(4):
        x, y = target[2 * i], target[2 * i + 1]
        u, v = source[2 * i], source[2 * i + 1]
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    return list(np.linalg.solve(np.array(rows, dtype=float), np.array(source, dtype=float)))
