"""Rendering variety: each row drawn in a style sampled from the render config's ranges.

A row's style (font, font size, line spacing, margin) is drawn from ``vary_*`` ranges with
a generator seeded by ``vary_seed``, the row's id and the parameter's name: the same config
gives the same dataset, whichever process or Ray node renders the row, and a parameter's
draw does not move when another range is added. The style is recorded in the row's
``render_params`` column. Without variety, :func:`build_row_renderer` is the plain
Renderer, whose output is unchanged.
"""

from __future__ import annotations

import random
from collections import OrderedDict

from deepsynth.config.dataset import RenderConfig, VarietyConfig
from deepsynth.config.spec import flat_fields
from deepsynth.errors import ConfigError
from deepsynth.render.fonts import resolve_font
from deepsynth.render.renderer import RenderedDocument, Renderer, build_renderer
from deepsynth.render.tokens import TokenCounter, token_counter

LINE_SPACING_STEP = 0.05  # line spacings drawn on this grid, so few renderers are built
RENDERERS_KEPT = 128  # per process: one per style in use, least recently used dropped
# Measured words and drawn word masks are cached per font and size. A plain renderer has one
# of those; variety may use every font at every size in its ranges (3 fonts at 10-40 px are
# 93), each filling its caches: 2.3 GB per worker on a corpus of many distinct words. So
# these budgets, per process, are shared out among the pairs the ranges allow, with a floor.
WORDS_BUDGET, MASKS_BUDGET = 200_000, 32_768
WORDS_FLOOR, MASKS_FLOOR = 4096, 1024


def font_size_pairs(config: RenderConfig) -> int:
    """How many (font, size) pairs the rows of ``config`` may be drawn with: the fonts, by
    the sizes of the range, down to min_font_size where shrink or a target compression can
    choose a smaller size."""
    vary = config.variety
    low, high = vary.range("font_size")
    if low is None:
        low = high = config.font_size
    if config.overflow == "shrink" or config.target_compression:
        low = min(low, config.min_font_size)
    return max(1, len(vary.vary_fonts)) * (high - low + 1)


def _draw(seed: int, row_id: str, name: str) -> random.Random:
    # A string seed is hashed with SHA-512 by random.Random: stable across processes and
    # machines, unlike hash().
    return random.Random(f"{seed}:{row_id}:{name}")


def sample_params(config: RenderConfig, row_id: str) -> dict:
    """The style of row ``row_id``: ``{"font", "font_size", "line_spacing", "margin"}``,
    each drawn from its range, or the fixed option where no range is given."""
    vary = config.variety
    seed = vary.vary_seed
    font = (_draw(seed, row_id, "font").choice(vary.vary_fonts) if vary.vary_fonts
            else config.font)
    params = {"font": font}
    for name in ("font_size", "margin"):
        low, high = vary.range(name)
        params[name] = (getattr(config, name) if low is None
                        else _draw(seed, row_id, name).randint(low, high))
    low, high = vary.range("line_spacing")
    if low is None:
        params["line_spacing"] = config.line_spacing
    else:
        steps = int((high - low) / LINE_SPACING_STEP + 1e-9)
        step = _draw(seed, row_id, "line_spacing").randint(0, steps)
        params["line_spacing"] = round(min(high, low + step * LINE_SPACING_STEP), 4)
    return {k: params[k] for k in ("font", "font_size", "line_spacing", "margin")}


class VarietyRenderer:
    """Renders each row with a Renderer for its sampled style (kept while in use)."""

    def __init__(self, config: RenderConfig, tokens: TokenCounter):
        self.config, self.tokens = config, tokens
        self.width, self.height = config.size
        self.fonts = {config.font: resolve_font(config.font)}
        for font in config.variety.vary_fonts:
            try:
                self.fonts[font] = resolve_font(font)
            except ConfigError as exc:  # the list, not the fixed font, named the file
                raise ConfigError("vary_fonts", exc.message, exc.allowed) from None
        self._renderers: OrderedDict[tuple, Renderer] = OrderedDict()
        self._shared: dict = {}  # (font, size): measurer and masks, shared by the styles
        pairs = font_size_pairs(config)
        self.words_cached = max(WORDS_FLOOR, WORDS_BUDGET // pairs)
        self.masks_cached = max(MASKS_FLOOR, MASKS_BUDGET // pairs)

    def params(self, row_id: str) -> dict:
        return sample_params(self.config, row_id)

    def for_params(self, params: dict) -> Renderer:
        key = tuple(params.values())
        renderer = self._renderers.get(key)
        if renderer is None:
            config = self.config
            renderer = Renderer(
                width=self.width, height=self.height, font_path=self.fonts[params["font"]],
                font_size=params["font_size"], min_font_size=config.min_font_size,
                margin=params["margin"], line_spacing=params["line_spacing"],
                color_mode=config.color_mode, png_level=config.png_level,
                overflow=config.overflow, max_pages=config.max_pages,
                fallback_fonts=config.fallback_fonts, tokens=self.tokens,
                target_compression=config.target_compression, shared_fonts=self._shared,
                words_cached=self.words_cached, masks_cached=self.masks_cached)
            self._renderers[key] = renderer
            if len(self._renderers) > RENDERERS_KEPT:
                self._renderers.popitem(last=False)
        else:
            self._renderers.move_to_end(key)
        return renderer

    def for_row(self, row_id: str) -> Renderer:
        return self.for_params(self.params(row_id))

    def render_row(self, text: str, row_id: str) -> RenderedDocument:
        params = self.params(row_id)
        rendered = self.for_params(params).render(text)
        rendered.render_params = params
        return rendered


def build_row_renderer(config: RenderConfig) -> Renderer | VarietyRenderer:
    """What renders a dataset's rows: ``render_row(text, row_id)`` and ``for_row(row_id)``
    (the Renderer that drew a row, as render QA lays its text out again)."""
    if not config.variety.enabled:
        return build_renderer(config)
    return VarietyRenderer(config, token_counter(config.tokenizer))


def variety_fields() -> tuple[str, ...]:
    return tuple(flat_fields(VarietyConfig))


def refuse_variety(given: dict, where: str) -> None:
    """One text drawn once (``deepsynth render``, the render preview) has no rows to vary:
    a ``vary_*`` option given there is refused, naming it, rather than ignored."""
    for name in variety_fields():
        if given.get(name) not in (None, [], ()):
            raise ConfigError(name, f"is not an option of {where}: rendering variety samples "
                              "a style per dataset row (deepsynth generate)",
                              "the render options without vary_*")
