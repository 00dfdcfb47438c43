"""Drawing laid-out lines onto page images and encoding them as PNG.

Each distinct word is rasterized once into a coverage mask and pasted wherever it appears:
corpora repeat words constantly, so this removes most of the glyph rasterization cost.

PNG encoding is our own few lines rather than Pillow's: Pillow tries every PNG filter on every
row and compresses with zlib, about 8 ms for a 1024x1024 page here; the "Up" filter and ISA-L's
deflate give files of the same size in under 1 ms (see docs/BENCHMARKS.md).
"""

from __future__ import annotations

import math
import struct
import zlib

import numpy as np
from isal import isal_zlib
from PIL import Image, ImageDraw

from deepsynth.render.bidi import RTL
from deepsynth.render.fonts import CAN_SHAPE, FontSet
from deepsynth.render.layout import Line, Word

MASKS_CACHED = 8192  # drawn word masks a painter keeps (per font set and size)


class PagePainter:
    """Paints pages of one size, font set and colour mode; caches word masks."""

    def __init__(self, fonts: FontSet, width: int, height: int, margin: int,
                 line_height: int, color_mode: str = "gray", cache_size: int = MASKS_CACHED,
                 masks: dict | None = None):
        self.fonts = fonts
        self.width, self.height = width, height
        self.margin = margin
        self.line_height = line_height
        self.mode = "L" if color_mode == "gray" else "RGB"
        self.ink = 0 if self.mode == "L" else (0, 0, 0)
        self.paper = 255 if self.mode == "L" else (255, 255, 255)
        ascent, descent = fonts.fonts[0].getmetrics()
        # Centre the font's box in the line box so extra line spacing is shared above and below.
        self.baseline = (line_height - (ascent + descent)) // 2 + ascent
        # Word masks with their offset from (pen x, baseline): they depend on the fonts only,
        # so painters of one font set with other margins or line spacings may share them.
        self._masks: dict[str, tuple[Image.Image, int, int] | None] = (
            {} if masks is None else masks)
        self._cache_size = cache_size

    def _runs(self, word: Word) -> list[tuple[float, object, str, dict]]:
        """(x from the pen, font, text, text-call arguments) of each run, left to right:
        a right-to-left word's runs go from right to left."""
        if not word.direction:
            fonts, args = [self.fonts.fonts[r.font] for r in word.runs], {}
        else:
            fonts = [self.fonts.shaping(r.font) for r in word.runs]
            args = {"direction": word.direction} if CAN_SHAPE else {}
        placed, x = [], 0.0
        pairs = list(zip(word.runs, fonts))
        for run, font in (reversed(pairs) if word.direction == RTL else pairs):
            placed.append((x, font, run.text, args))
            x += font.getlength(run.text, **args)
        return placed

    def _mask(self, word: Word) -> tuple[Image.Image, int, int] | None:
        """The word's coverage mask and its offset from (pen x, baseline); None if blank."""
        cached = self._masks.get(word.key, False)
        if cached is not False:
            return cached
        runs = self._runs(word)
        boxes = []
        for x, font, text, args in runs:
            left, top, right, bottom = font.getbbox(text, anchor="ls", **args)
            boxes.append((x + left, top, x + right, bottom))
        left = math.floor(min(b[0] for b in boxes))
        top = math.floor(min(b[1] for b in boxes))
        right = math.ceil(max(b[2] for b in boxes))
        bottom = math.ceil(max(b[3] for b in boxes))
        result = None
        if right > left and bottom > top:
            mask = Image.new("L", (right - left, bottom - top), 0)
            draw = ImageDraw.Draw(mask)
            for x, font, text, args in runs:
                draw.text((x - left, -top), text, fill=255, font=font, anchor="ls", **args)
            result = (mask, left, top)
        if len(self._masks) >= self._cache_size:
            self._masks.clear()
        self._masks[word.key] = result
        return result

    def paint(self, lines: list[Line]) -> Image.Image:
        page = Image.new(self.mode, (self.width, self.height), self.paper)
        # Pasting through the image core skips Image.paste's argument checks, which cost
        # more than the paste itself for a word-sized mask.
        core, ink, masks = page.im, self.ink, self._masks
        y = self.margin + self.baseline
        for line in lines:
            for x, word in line.words:
                mask = masks.get(word.key, False)
                if mask is False:
                    mask = self._mask(word)
                if mask is not None:
                    image, dx, dy = mask
                    left, top = self.margin + round(x) + dx, y + dy
                    core.paste(ink, (left, top, left + image.width, top + image.height),
                               image.im)
            y += self.line_height
        return page


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(
        ">I", zlib.crc32(data, zlib.crc32(kind)))


def _deflate(data: memoryview, level: int) -> bytes:
    """Level 0 stores, 1-3 use ISA-L's fast deflate, 4-9 zlib's slower, smaller deflate."""
    if 1 <= level <= 3:
        return isal_zlib.compress(data, level)
    return zlib.compress(data, level)


def encode_png(page: Image.Image, level: int) -> bytes:
    """An 8-bit grayscale or RGB PNG of ``page``, every row with the Up filter."""
    pixels = np.asarray(page)
    height = pixels.shape[0]
    rows = pixels.reshape(height, -1)
    filtered = np.empty((height, rows.shape[1] + 1), dtype=np.uint8)
    filtered[:, 0] = 2  # PNG filter type "Up": each byte minus the byte above it, mod 256
    filtered[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])
    color_type = 0 if page.mode == "L" else 2
    header = struct.pack(">IIBBBBB", page.width, page.height, 8, color_type, 0, 0, 0)
    return b"".join((b"\x89PNG\r\n\x1a\n", _chunk(b"IHDR", header),
                     _chunk(b"IDAT", _deflate(memoryview(filtered).cast("B"), level)),
                     _chunk(b"IEND", b"")))
