"""Text to page images with statistics: layout, overflow policy, drawing, PNG encoding.

``Renderer`` takes plain parameters; :func:`build_renderer` builds one from a RenderConfig.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from PIL import Image

from deepsynth.config.dataset import RenderConfig
from deepsynth.render.fonts import FontSet, resolve_font
from deepsynth.render.layout import (
    WORDS_CACHED, Layout, Measurer, layout_text, missing_glyphs, normalize_text,
)
from deepsynth.render.legibility import document_warnings
from deepsynth.render.page import MASKS_CACHED, PagePainter, encode_png
from deepsynth.render.tokens import TokenCounter, row_vision_tokens, token_counter


@dataclass
class RenderStats:
    """What a rendered document reports; also the per-row statistics columns of a dataset."""

    num_pages: int
    num_lines: int
    num_chars: int
    missing_glyphs: int
    missing_glyph_chars: str
    truncated_chars: int
    font_size: int
    text_tokens: int
    vision_tokens: int
    compression_ratio: float

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class RenderedDocument:
    pages: list[bytes]
    stats: RenderStats
    timings: dict[str, float] = field(default_factory=dict)
    # each page's text tokens per vision token (not a dataset column; counted in the
    # manifest as lossy_pages and unreadable_pages, see legibility.py)
    page_compression: list[float] = field(default_factory=list)
    # the row's sampled style under rendering variety (render/variety.py), else None
    render_params: dict | None = None

    def warnings(self) -> list[dict]:
        return document_warnings(self.page_compression, self.stats.missing_glyphs,
                                 self.stats.missing_glyph_chars)


def _chars_on(pages: list) -> int:
    return sum(len(word.text) for page in pages for line in page for _, word in line.words)


class _SizedEngine:
    """Measurer and painter for one font size (the shrink policy uses several)."""

    def __init__(self, shared: tuple[Measurer, dict], width: int, height: int, margin: int,
                 line_spacing: float, color_mode: str, masks_cached: int):
        self.measurer, masks = shared
        fonts = self.measurer.fonts
        ascent, descent = fonts.fonts[0].getmetrics()
        self.line_height = max(1, round((ascent + descent) * line_spacing))
        self.painter = PagePainter(fonts, width, height, margin, self.line_height, color_mode,
                                   cache_size=masks_cached, masks=masks)


class Renderer:
    """Renders documents to PNG pages according to one set of render options."""

    def __init__(self, *, width: int, height: int, font_path: Path, font_size: int,
                 min_font_size: int, margin: int, line_spacing: float, color_mode: str,
                 png_level: int, overflow: str, max_pages: int | None,
                 fallback_fonts: bool, tokens: TokenCounter,
                 target_compression: float | None = None,
                 shared_fonts: dict[tuple[Path, int], tuple[Measurer, dict]] | None = None,
                 words_cached: int = WORDS_CACHED, masks_cached: int = MASKS_CACHED):
        self.width, self.height = width, height
        self.font_path, self.font_size = font_path, font_size
        self.min_font_size = min(min_font_size, font_size)
        self.margin, self.line_spacing, self.color_mode = margin, line_spacing, color_mode
        self.png_level, self.overflow = png_level, overflow
        self.page_limit = max_pages if max_pages or overflow == "paginate" else 1
        self.fallback_fonts = fallback_fonts
        self.tokens = tokens
        self.target_compression = target_compression
        self._engines: dict[int, _SizedEngine] = {}
        # Fonts, measured words and word masks by (font, size): rendering variety shares
        # them between the renderers of its styles (margins and line spacings leave them be).
        self._shared = {} if shared_fonts is None else shared_fonts
        # Cache sizes per font and size: rendering variety, with many of them, gives each less.
        self.words_cached, self.masks_cached = words_cached, masks_cached

    def _engine(self, size: int) -> _SizedEngine:
        if size not in self._engines:
            key = (self.font_path, size)
            if key not in self._shared:
                fonts = FontSet(self.font_path, size, self.fallback_fonts)
                self._shared[key] = (Measurer(fonts, self.words_cached), {})
            self._engines[size] = _SizedEngine(
                self._shared[key], self.width, self.height, self.margin,
                self.line_spacing, self.color_mode, self.masks_cached)
        return self._engines[size]

    def _layout(self, text: str, size: int) -> Layout:
        engine = self._engine(size)
        return layout_text(text, engine.measurer, self.width, self.height, self.margin,
                           engine.line_height)

    def _fitting_layout(self, text: str) -> tuple[Layout, int]:
        """The layout at the configured size, or for ``shrink`` the largest size that fits,
        or for a target compression the largest size within its page count."""
        layout = self._layout(text, self.font_size)
        limit = self.page_limit
        if self.target_compression:
            # Vision tokens grow with pages only: R text tokens per vision token is a count
            # of pages, and the largest font size that stays within it.
            per_page = row_vision_tokens(self.width, self.height) * self.target_compression
            limit = max(1, round(self.tokens.count(text) / per_page))
            if self.page_limit:
                limit = min(limit, self.page_limit)
        elif self.overflow != "shrink":
            return layout, self.font_size
        if len(layout.pages) <= limit:
            return layout, self.font_size
        return self._largest_fitting(text, limit)

    def _largest_fitting(self, text: str, limit: int) -> tuple[Layout, int]:
        best = None
        lo, hi = self.min_font_size, self.font_size - 1
        while lo <= hi:  # the largest size whose layout fits, by binary search
            mid = (lo + hi) // 2
            candidate = self._layout(text, mid)
            if len(candidate.pages) <= limit:
                best, lo = (candidate, mid), mid + 1
            else:
                hi = mid - 1
        return best or (self._layout(text, self.min_font_size), self.min_font_size)

    def render(self, text: str) -> RenderedDocument:
        start = time.perf_counter()
        text = normalize_text(text)
        layout, size = self._fitting_layout(text)
        pages = layout.pages
        truncated = 0
        if self.page_limit and len(pages) > self.page_limit:
            truncated = _chars_on(pages[self.page_limit:])
            pages = pages[:self.page_limit]
        laid_out = time.perf_counter()
        images = [self._engine(size).painter.paint(page) for page in pages]
        drawn = time.perf_counter()
        encoded = [encode_png(image, self.png_level) for image in images]
        done = time.perf_counter()
        stats = self._stats(text, pages, size, truncated)
        timings = {"layout": laid_out - start, "draw": drawn - laid_out, "encode": done - drawn}
        return RenderedDocument(encoded, stats, timings, self._page_compression(stats, pages))

    def render_row(self, text: str, row_id: str) -> RenderedDocument:
        """A dataset row: every row alike (rendering variety samples a style per row)."""
        return self.render(text)

    def for_row(self, row_id: str) -> Renderer:
        return self

    def render_images(self, text: str) -> list[Image.Image]:
        """Pages as Pillow images (no PNG encoding), for previews."""
        layout, size = self._fitting_layout(normalize_text(text))
        pages = layout.pages[:self.page_limit] if self.page_limit else layout.pages
        return [self._engine(size).painter.paint(page) for page in pages]

    def page_texts(self, text: str) -> list[str]:
        """The text drawn on each page (each line's words joined by one space, lines by
        line breaks), as render QA compares it with what an OCR engine reads back."""
        layout, _ = self._fitting_layout(normalize_text(text))
        pages = layout.pages[:self.page_limit] if self.page_limit else layout.pages
        return ["\n".join(line.text for line in page) for page in pages]

    def _page_compression(self, stats: RenderStats, pages: list) -> list[float]:
        """Text tokens per vision token of each page; one page's is the document's."""
        if len(pages) == 1:
            return [stats.compression_ratio]
        per_page = row_vision_tokens(self.width, self.height)
        return [round(self.tokens.count("\n".join(line.text for line in page)) / per_page, 4)
                for page in pages]

    def _stats(self, text: str, pages: list, size: int, truncated: int) -> RenderStats:
        missing, missing_chars = missing_glyphs(pages, self._engine(size).measurer.fonts)
        if truncated:  # the ratio compares what the pages hold, so count only the kept text
            text = "\n".join(line.text for page in pages for line in page)
        text_tokens = self.tokens.count(text)
        vision = row_vision_tokens(self.width, self.height) * len(pages)
        return RenderStats(
            num_pages=len(pages), num_lines=sum(len(p) for p in pages), num_chars=len(text),
            missing_glyphs=missing, missing_glyph_chars=missing_chars,
            truncated_chars=truncated, font_size=size, text_tokens=text_tokens,
            vision_tokens=vision, compression_ratio=round(text_tokens / vision, 4))


def build_renderer(config: RenderConfig) -> Renderer:
    width, height = config.size
    return Renderer(
        width=width, height=height, font_path=resolve_font(config.font),
        font_size=config.font_size, min_font_size=config.min_font_size, margin=config.margin,
        line_spacing=config.line_spacing, color_mode=config.color_mode,
        png_level=config.png_level, overflow=config.overflow, max_pages=config.max_pages,
        fallback_fonts=config.fallback_fonts, tokens=token_counter(config.tokenizer),
        target_compression=config.target_compression)
