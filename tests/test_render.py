"""Rendering: wrapping and pagination, glyph fallback, overflow policies, stats, PNG, config, CLI.

Everything here runs the real renderer (Pillow, the bundled DejaVu fonts, system fonts such as
Noto CJK); nothing is mocked. Pages are small so the whole file stays fast.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import run_cli
from deepsynth.config import RenderConfig, from_dict
from deepsynth.errors import ConfigError
from deepsynth.render.fonts import (
    FontSet, bundled_font_path, font_codepoints, resolve_font, system_fallback_fonts,
)
from deepsynth.render.layout import (
    TAB_SPACES, Layout, Measurer, layout_text, missing_glyphs, normalize_text,
)
from deepsynth.render.page import encode_png
from deepsynth.render.renderer import build_renderer
from deepsynth.render.tokens import EstimatedTokens, page_tokens, vision_token_table

# --------------------------------------------------------------------------- helpers

PROSE = (
    "The council met on Tuesday to discuss the budget for the coming year. Members argued "
    "about the cost of the new railway station, the state of the harbour and the opening "
    "hours of the public library. After three hours, a compromise was reached.\n\n"
    "Meanwhile, the weather service warned of heavy rain over the river valley. Schools "
    "closed early, the museum postponed its festival, and the hospital prepared for a busy "
    "night. Police asked drivers to avoid the bridge until the water level had fallen.\n\n"
    "In the morning the garden behind the energy plant was flooded, but the market opened as "
    "usual and the city report described the damage as limited."
)
LONG_PROSE = "\n\n".join([PROSE] * 4)
LONG_WORD = "".join("abcdefghijklmnopqrstuvwxyz0123456789"[i % 36] for i in range(2000))
TABS_AND_SPACES = ("name:\tvalue\t\tend\n    indented   with    runs  of spaces\n"
                   "\t\tdouble tab start\n" + "word  " * 80)
BLANK_LINES = "first paragraph\n\n\n\nsecond after blanks\n\n\nthird\n\n\n"
CRLF = "line one\r\nline two\r\n\r\nline four after a blank\r\n" * 6
ACCENTED_CYRILLIC = (
    "Ça déjà vu, naïve façade; Ærøskøbing, Straße, São Paulo, Kraków, Dvořák. "
    "Привет, мир! Съешь же ещё этих мягких французских булок да выпей чаю. "
    "Ёжик в тумане и Чебурашка. " * 5
)

TEXTS = {
    "long_prose": LONG_PROSE,
    "long_word": LONG_WORD,
    "tabs_and_spaces": TABS_AND_SPACES,
    "blank_lines": BLANK_LINES,
    "crlf": CRLF,
    "accented_cyrillic": ACCENTED_CYRILLIC,
}


def small_config(**overrides) -> RenderConfig:
    options = {"page_size": "300x300", "font_size": 14, "margin": 10}
    options.update(overrides)
    return RenderConfig(**options)


class Engine:
    """The public pieces a renderer uses for one config: fonts, measurer and line height."""

    def __init__(self, config: RenderConfig, size: int | None = None):
        self.config = config
        self.width, self.height = config.size
        self.margin = config.margin
        self.fonts = FontSet(resolve_font(config.font), size or config.font_size,
                             config.fallback_fonts)
        ascent, descent = self.fonts.fonts[0].getmetrics()
        self.line_height = max(1, round((ascent + descent) * config.line_spacing))
        self.measurer = Measurer(self.fonts)

    @property
    def available(self) -> int:
        return self.width - 2 * self.margin

    @property
    def lines_per_page(self) -> int:
        return (self.height - 2 * self.margin) // self.line_height

    def layout(self, text: str) -> Layout:
        return layout_text(normalize_text(text), self.measurer, self.width, self.height,
                           self.margin, self.line_height)


def words_of(layout: Layout) -> list:
    return [word for page in layout.pages for line in page for _, word in line.words]


def placed(layout: Layout) -> list:
    return [(x, word) for page in layout.pages for line in page for x, word in line.words]


def no_whitespace(text: str) -> str:
    return "".join(unicodedata.normalize("NFC", text).split())


def decode(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    image.load()
    return image


# --------------------------------------------------------------------------- 1. nothing lost


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_wrapping_and_pagination_lose_nothing(name):
    text = TEXTS[name]
    config = small_config()
    engine = Engine(config)
    layout = engine.layout(text)

    assert "".join(w.text for w in words_of(layout)) == no_whitespace(text)
    for x, word in placed(layout):
        assert x >= 0
        assert x + word.width <= engine.available + 0.5, (name, x, word.text, word.width)
    assert all(len(page) <= engine.lines_per_page for page in layout.pages)
    assert layout.line_count == sum(len(page) for page in layout.pages)
    assert missing_glyphs(layout.pages, engine.fonts)[0] == 0

    rendered = build_renderer(config).render(text)
    assert rendered.stats.num_pages == len(rendered.pages) == len(layout.pages)
    assert rendered.stats.num_lines == layout.line_count
    assert rendered.stats.truncated_chars == 0
    for png in rendered.pages:
        assert decode(png).size == (300, 300)


@pytest.mark.parametrize("name", ["long_prose", "long_word", "accented_cyrillic"])
def test_long_texts_span_several_full_pages(name):
    engine = Engine(small_config())
    layout = engine.layout(TEXTS[name])
    assert len(layout.pages) > 1
    assert engine.lines_per_page == (300 - 20) // engine.line_height
    assert all(len(page) <= engine.lines_per_page for page in layout.pages)
    # every page but the last is filled before a new one starts
    assert all(len(page) == engine.lines_per_page for page in layout.pages[:-1])


def test_long_word_is_broken_into_pieces_that_fill_lines():
    engine = Engine(small_config())
    layout = engine.layout(LONG_WORD)
    pieces = words_of(layout)
    assert len(pieces) > 10
    assert all(len(line.words) == 1 for page in layout.pages for line in page)
    # each piece is the longest prefix of the rest that fits: one more character would not
    rest = LONG_WORD
    for piece in pieces[:-1]:
        assert rest.startswith(piece.text)
        longer = engine.measurer.word(rest[:len(piece.text) + 1])
        assert piece.width <= engine.available < longer.width
        rest = rest[len(piece.text):]
    assert rest == pieces[-1].text


def test_crlf_gives_the_same_layout_as_lf():
    engine = Engine(small_config())
    crlf = engine.layout(CRLF)
    lf = engine.layout(CRLF.replace("\r\n", "\n"))
    assert [[line.text for line in page] for page in crlf.pages] == [
        [line.text for line in page] for page in lf.pages]
    assert "\r" not in normalize_text(CRLF)


# --------------------------------------------------------------------------- 2. paragraphs


def test_blank_line_between_paragraphs_is_kept():
    engine = Engine(small_config())
    layout = engine.layout("a\n\nb")
    lines = layout.pages[0]
    assert layout.line_count == 3
    assert [line.text for line in lines] == ["a", "", "b"]
    stats = build_renderer(small_config()).render("a\n\nb").stats
    assert stats.num_lines == 3 and stats.num_pages == 1


def test_trailing_blank_lines_are_dropped():
    layout = Engine(small_config()).layout("a\n\nb\n\n\n\n")
    assert layout.line_count == 3


def test_leading_indentation_shifts_first_word():
    engine = Engine(small_config())
    layout = engine.layout("Plain paragraph.\n    Indented paragraph here.")
    first, second = layout.pages[0][0], layout.pages[0][1]
    assert first.words[0][0] == 0
    x, word = second.words[0]
    assert word.text == "Indented"
    assert x > 0
    assert x == pytest.approx(4 * engine.measurer.space)


def test_word_after_tab_starts_at_tab_stop():
    engine = Engine(small_config())
    tab = TAB_SPACES * engine.measurer.space
    for text in ("a\tb", "abcdefgh\tz", "x\t\ty"):
        line = engine.layout(text).pages[0][0]
        (x0, first), (x1, second) = line.words
        assert x1 > x0 + first.width
        assert x1 % tab == pytest.approx(0), (text, x1, tab)
        # the next stop after the first word, or one more per extra tab
        stop = (math.floor((x0 + first.width) / tab) + text.count("\t")) * tab
        assert x1 == pytest.approx(stop)


def test_runs_of_spaces_keep_their_width_inside_a_line():
    engine = Engine(small_config())
    one = engine.layout("a b").pages[0][0].words[1][0]
    three = engine.layout("a   b").pages[0][0].words[1][0]
    assert three - one == pytest.approx(2 * engine.measurer.space)


# --------------------------------------------------------------------------- 3. NFC


def test_decomposed_and_composed_accents_render_identically():
    engine = Engine(small_config())
    decomposed = engine.layout("caf" + "e\u0301" + " cr" + "e\u0300" + "me")
    composed = engine.layout("caf\u00e9 cr\u00e8me")
    assert [w.text for w in words_of(decomposed)] == ["caf\u00e9", "cr\u00e8me"]
    assert [w.text for w in words_of(composed)] == ["caf\u00e9", "cr\u00e8me"]
    assert [(x, w.width) for x, w in placed(decomposed)] == [
        (x, w.width) for x, w in placed(composed)]
    renderer = build_renderer(small_config())
    a, b = renderer.render("e\u0301"), renderer.render("\u00e9")
    assert a.stats.num_chars == b.stats.num_chars == 1
    assert decode(a.pages[0]).tobytes() == decode(b.pages[0]).tobytes()


# --------------------------------------------------------------------------- 4. glyphs


def _any_font_has(char: str) -> bool:
    fonts = [bundled_font_path("DejaVuSans"), *system_fallback_fonts()]
    return any(ord(char) in font_codepoints(str(path)) for path in fonts)


@pytest.mark.parametrize("text", ["Ça déjà vu, naïve façade", "Привет, мир"])
def test_accented_latin_and_cyrillic_need_no_fallback(text):
    stats = build_renderer(small_config()).render(text).stats
    assert stats.missing_glyphs == 0 and stats.missing_glyph_chars == ""
    engine = Engine(small_config())
    engine.layout(text)
    assert len(engine.fonts.paths) == 1  # the bundled DejaVuSans draws them all


def test_cjk_falls_back_to_noto_cjk():
    text = "你好，世界。日本語の文章。한국어"
    engine = Engine(small_config())
    layout = engine.layout(text)
    assert missing_glyphs(layout.pages, engine.fonts)[0] == 0
    fallbacks = engine.fonts.paths[1:]
    assert fallbacks and any("CJK" in path.name for path in fallbacks), fallbacks
    cjk_index = next(i for i, p in enumerate(engine.fonts.paths) if "CJK" in p.name)
    assert engine.fonts.font_index("你") == cjk_index
    assert engine.fonts.font_index("한") == cjk_index

    rendered = build_renderer(small_config()).render(text)
    assert rendered.stats.missing_glyphs == 0
    assert rendered.stats.missing_glyph_chars == ""
    page = np.asarray(decode(rendered.pages[0]))
    assert (page < 128).sum() > 200  # ink was actually drawn


def test_characters_no_font_has_are_counted_as_missing():
    candidates = "\ue000\U0001F9EA\U000F0000"
    text = "ok \ue000 lab\U0001F9EAtube plane15\U000F0000 \ue000 end"
    expected = [c for c in text if not c.isspace() and not _any_font_has(c)]
    assert "\U000F0000" in expected  # supplementary private use: in no font
    assert set(expected) <= set(candidates)

    stats = build_renderer(small_config()).render(text).stats
    assert stats.missing_glyphs == len(expected)
    assert sorted(stats.missing_glyph_chars) == sorted(set(expected))
    assert len(stats.missing_glyph_chars) == len(set(stats.missing_glyph_chars))
    assert stats.num_pages == 1


def test_without_fallback_fonts_cjk_is_missing():
    text = "你好，世界。日本語の文章。한국어"
    dejavu = font_codepoints(str(bundled_font_path("DejaVuSans")))
    expected = [c for c in text if ord(c) not in dejavu]
    assert len(expected) >= len(text) - 4  # almost all of it is outside DejaVu

    stats = build_renderer(small_config(fallback_fonts=False)).render(text).stats
    assert stats.missing_glyphs == len(expected)
    assert set(stats.missing_glyph_chars) == set(expected)
    engine = Engine(small_config(fallback_fonts=False))
    engine.layout(text)
    assert len(engine.fonts.paths) == 1


# --------------------------------------------------------------------------- 5. pixels

PINNED_TEXT = "The quick brown fox jumps over the lazy dog. Pack my box."
# sha256 of the decoded pixels (not the PNG bytes) of PINNED_TEXT on a 320x200 page. It pins the
# bundled DejaVuSans font file and Pillow's BASIC layout engine (same pixels with or without
# libraqm); a change here means every generated dataset changes.
PINNED_PIXELS_SHA256 = "c6585cf1d78880a59327ea619db50bf4af13c27bde2a9e8c7973c7abed9c9402"


def pinned_config(**overrides) -> RenderConfig:
    options = {"page_size": "320x200", "font": "DejaVuSans", "font_size": 18, "margin": 10,
               "fallback_fonts": False}
    options.update(overrides)
    return RenderConfig(**options)


def test_fixed_text_renders_to_pinned_pixels():
    rendered = build_renderer(pinned_config()).render(PINNED_TEXT)
    assert rendered.stats.num_pages == 1 and rendered.stats.num_lines == 2
    image = decode(rendered.pages[0])
    assert image.mode == "L"
    assert image.size == (320, 200)
    assert hashlib.sha256(image.tobytes()).hexdigest() == PINNED_PIXELS_SHA256


def test_pixels_do_not_depend_on_png_level_and_rgb_is_gray_ink():
    gray = decode(build_renderer(pinned_config()).render(PINNED_TEXT).pages[0])
    for level in (0, 9):
        other = decode(build_renderer(pinned_config(png_level=level)).render(PINNED_TEXT).pages[0])
        assert other.tobytes() == gray.tobytes()
    rgb = decode(build_renderer(pinned_config(color_mode="rgb")).render(PINNED_TEXT).pages[0])
    assert rgb.mode == "RGB" and rgb.size == (320, 200)
    assert rgb.convert("L").tobytes() == gray.tobytes()


def test_render_images_matches_encoded_pages():
    renderer = build_renderer(small_config())
    images = renderer.render_images(LONG_PROSE)
    pages = renderer.render(LONG_PROSE).pages
    assert len(images) == len(pages) > 1
    for image, png in zip(images, pages, strict=True):
        assert image.tobytes() == decode(png).tobytes()


# --------------------------------------------------------------------------- 6. overflow

OVERFLOW_TEXT = "\n\n".join([PROSE] * 3)


def test_paginate_keeps_everything():
    stats = build_renderer(RenderConfig(page_size="tiny", overflow="paginate")).render(
        OVERFLOW_TEXT).stats
    assert stats.num_pages >= 3
    assert stats.truncated_chars == 0
    assert stats.font_size == 18


def _drawn_chars(config: RenderConfig, text: str) -> int:
    engine = Engine(config)
    layout = engine.layout(text)
    limit = config.max_pages or 1
    return sum(len(w.text) for page in layout.pages[:limit] for line in page
               for _, w in line.words)


def test_truncate_keeps_one_page_and_counts_the_rest():
    paginated = build_renderer(RenderConfig(page_size="tiny")).render(OVERFLOW_TEXT)
    config = RenderConfig(page_size="tiny", overflow="truncate")
    truncated = build_renderer(config).render(OVERFLOW_TEXT)
    assert len(truncated.pages) == truncated.stats.num_pages == 1
    assert truncated.pages[0] == paginated.pages[0]
    total = len(no_whitespace(OVERFLOW_TEXT))
    drawn = _drawn_chars(config, OVERFLOW_TEXT)
    assert 0 < drawn < total
    assert truncated.stats.truncated_chars == total - drawn > 0
    # the characters cut are exactly those of the pages paginate puts after the first
    engine = Engine(config)
    later = sum(len(w.text) for page in engine.layout(OVERFLOW_TEXT).pages[1:]
                for line in page for _, w in line.words)
    assert truncated.stats.truncated_chars == later
    assert truncated.stats.num_lines == Engine(config).lines_per_page
    assert truncated.stats.vision_tokens == 257


def test_paginate_with_max_pages_truncates():
    config = RenderConfig(page_size="tiny", overflow="paginate", max_pages=2)
    rendered = build_renderer(config).render(OVERFLOW_TEXT)
    assert len(rendered.pages) == rendered.stats.num_pages == 2
    drawn = _drawn_chars(config, OVERFLOW_TEXT)
    assert rendered.stats.truncated_chars == len(no_whitespace(OVERFLOW_TEXT)) - drawn > 0


def test_shrink_fits_one_page_with_a_smaller_font():
    text = "\n\n".join([PROSE] * 2)
    config = RenderConfig(page_size="tiny", overflow="shrink", font_size=18, min_font_size=8)
    assert len(Engine(config).layout(text).pages) > 1  # too long at the configured size
    rendered = build_renderer(config).render(text)
    stats = rendered.stats
    assert len(rendered.pages) == stats.num_pages == 1
    assert 8 <= stats.font_size < 18
    assert stats.truncated_chars == 0
    # the largest size that fits: one point larger would need a second page
    assert len(Engine(config, stats.font_size).layout(text).pages) == 1
    assert len(Engine(config, stats.font_size + 1).layout(text).pages) > 1


def test_shrink_truncates_when_even_the_smallest_font_overflows():
    text = "\n\n".join([PROSE] * 12)
    config = RenderConfig(page_size="tiny", overflow="shrink", font_size=18, min_font_size=12)
    rendered = build_renderer(config).render(text)
    stats = rendered.stats
    assert stats.num_pages == len(rendered.pages) == 1
    assert stats.font_size == 12
    assert stats.truncated_chars > 0
    drawn = sum(len(w.text) for page in Engine(config, 12).layout(text).pages[:1]
                for line in page for _, w in line.words)
    assert stats.truncated_chars == len(no_whitespace(text)) - drawn


def test_short_text_is_never_truncated_or_shrunk():
    for overflow in ("paginate", "truncate", "shrink"):
        stats = build_renderer(RenderConfig(page_size="tiny", overflow=overflow)).render(
            "A short text.").stats
        assert stats.num_pages == 1 and stats.truncated_chars == 0 and stats.font_size == 18


# --------------------------------------------------------------------------- 7. stats


@pytest.mark.parametrize("page_size", ["tiny", "small", "768x768", "base", "800x800"])
def test_vision_tokens_are_what_deepseek_ocr_2_is_fed(page_size):
    """A row's vision_tokens: DeepSeek-OCR-2 at its real 1024 px in image mode global,
    the default, whatever the page's size (each page becomes one 1024 px view), computed
    where training counts them (deepsynth.render.tokens.page_tokens)."""
    text = "Vision tokens are the model's, not the page's."
    stats = build_renderer(RenderConfig(page_size=page_size)).render(text).stats
    width, height = RenderConfig(page_size=page_size).size
    assert stats.num_pages == 1
    assert stats.vision_tokens == 257 == page_tokens("deepseek_ocr2", 1024, "global",
                                                       width, height)
    assert stats.compression_ratio == round(stats.text_tokens / stats.vision_tokens, 4)
    assert stats.text_tokens == EstimatedTokens().count(text)


@pytest.mark.parametrize("size, ocr2, v1, unlimited", [
    ((512, 512), 257, 273, 273),  # smaller than a tile: crops are the global view
    ((1024, 1024), 257 + 4 * 144, 273 + 20 * 21, 273 + 20 * 21),  # 2 x 2 tiles
    ((768, 1024), 257 + 6 * 144, 273 + 30 * 21, 273 + 40 * 31),  # 2 x 3; Unlimited 3 x 4
    ((1024, 700), 257 + 6 * 144, 273 + 20 * 31, 273 + 20 * 31),  # 3 x 2
])
def test_vision_token_table_per_model_and_image_mode(size, ocr2, v1, unlimited):
    """Crops: DeepSeek-OCR-2 adds 144 tokens per 768 px tile; v1 lays its 640 px tiles'
    10 x 10 features out as one grid with a newline per row ((rows x 10) x (columns x 10 + 1));
    Unlimited-OCR the same, with up to 32 tiles instead of 6."""
    assert vision_token_table(*size) == [
        {"model": "DeepSeek-OCR-2", "global": 257, "crops": ocr2},
        {"model": "DeepSeek-OCR v1", "global": 273, "crops": v1},
        {"model": "Unlimited-OCR", "global": 273, "crops": unlimited}]


def test_vision_tokens_scale_with_pages():
    stats = build_renderer(small_config()).render(LONG_PROSE).stats
    assert stats.num_pages > 1
    assert stats.vision_tokens == 257 * stats.num_pages
    assert stats.compression_ratio == round(stats.text_tokens / stats.vision_tokens, 4)
    assert stats.num_chars == len(normalize_text(LONG_PROSE))


def test_cjk_estimate_counts_one_token_per_character():
    text = "你好世界" * 10
    stats = build_renderer(small_config()).render(text).stats
    assert stats.text_tokens == 40


def _train_tokenizer(folder: Path) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordLevelTrainer(special_tokens=["[UNK]"], min_frequency=1)
    sentences = ["the council met on tuesday", "the river rose in the night",
                 "the market opened as usual", "a report on the budget"]
    tokenizer.train_from_iterator(sentences, trainer=trainer)
    path = folder / "tokenizer.json"
    tokenizer.save(str(path))
    return path


def test_tokenizer_counts_text_tokens(tmp_path):
    from tokenizers import Tokenizer

    path = _train_tokenizer(tmp_path)
    text = "the council met on the river bank , and the market opened as usual tonight"
    expected = len(Tokenizer.from_file(str(path)).encode(text, add_special_tokens=False).ids)
    assert expected != EstimatedTokens().count(text)  # so the option visibly matters

    for tokenizer in (str(path), str(tmp_path)):  # the file or its folder
        stats = build_renderer(small_config(tokenizer=tokenizer)).render(text).stats
        assert stats.text_tokens == expected
        assert stats.compression_ratio == round(expected / stats.vision_tokens, 4)


def test_missing_tokenizer_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as info:
        build_renderer(small_config(tokenizer=str(tmp_path / "nope" / "tokenizer.json")))
    assert info.value.field == "tokenizer"
    assert "tokenizer" in str(info.value)


# --------------------------------------------------------------------------- 8. PNG


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_png_encoder_round_trips_at_every_level(mode):
    rng = np.random.default_rng(7)
    shape = (37, 53) if mode == "L" else (29, 41, 3)
    pixels = rng.integers(0, 256, size=shape, dtype=np.uint8)
    image = Image.fromarray(pixels, mode)
    sizes = {}
    for level in range(10):
        png = encode_png(image, level)
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        back = decode(png)
        assert back.mode == mode and back.size == image.size
        assert np.array_equal(np.asarray(back), pixels), level
        sizes[level] = len(png)
    assert sizes[0] >= pixels.size  # level 0 stores


def test_png_encoder_round_trips_a_rendered_page_and_one_row_images():
    page = build_renderer(small_config()).render_images(PROSE)[0]
    for level in (0, 1, 6, 9):
        assert decode(encode_png(page, level)).tobytes() == page.tobytes()
    row = Image.fromarray(np.arange(200, dtype=np.uint8).reshape(1, 200), "L")
    assert decode(encode_png(row, 1)).tobytes() == row.tobytes()


# --------------------------------------------------------------------------- 9. config


@pytest.mark.parametrize("data, field, needles", [
    ({"font_size": 1000}, "font_size", ["font_size", "6", "96", "1000"]),
    ({"page_size": "huge"}, "page_size", ["page_size", "tiny", "small", "base", "large",
                                          "WxH", "huge"]),
    ({"color_mode": "cmyk"}, "color_mode", ["color_mode", "gray", "rgb", "cmyk"]),
    ({"png_level": 12}, "png_level", ["png_level", "0", "9", "12"]),
    ({"overflow": "wrap"}, "overflow", ["overflow", "paginate", "truncate", "shrink", "wrap"]),
    ({"page_size": "tiny", "margin": 250}, "margin", ["margin", "512x512"]),
    ({"colour": "gray"}, "colour", ["colour", "not a known field", "color_mode"]),
])
def test_bad_render_config_names_field_and_allowed_values(data, field, needles):
    with pytest.raises(ConfigError) as info:
        from_dict(RenderConfig, data)
    assert info.value.field == field
    message = str(info.value)
    for needle in needles:
        assert needle in message, (needle, message)


def test_font_size_error_message_is_exact():
    with pytest.raises(ConfigError) as info:
        from_dict(RenderConfig, {"font_size": 1000})
    assert str(info.value) == "font_size must be between 6 and 96; got 1000"


def test_good_render_config_parses():
    config = from_dict(RenderConfig, {"page_size": "300x200", "font_size": "12",
                                      "fallback_fonts": "false", "max_pages": 3})
    assert config.size == (300, 200)
    assert config.font_size == 12 and config.fallback_fonts is False and config.max_pages == 3


def test_unknown_font_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as info:
        build_renderer(RenderConfig(font="NoSuchFont"))
    assert info.value.field == "font"
    assert "DejaVuSans" in str(info.value) and "NoSuchFont" in str(info.value)
    not_a_font = tmp_path / "font.txt"
    not_a_font.write_text("hello")
    with pytest.raises(ConfigError) as info:
        build_renderer(RenderConfig(font=str(not_a_font)))
    assert info.value.field == "font"


def test_font_file_path_is_accepted():
    path = str(bundled_font_path("DejaVuSerif"))
    stats = build_renderer(small_config(font=path)).render("Serif text.").stats
    assert stats.num_pages == 1 and stats.missing_glyphs == 0


def test_corrupt_font_file_is_a_config_error(tmp_path):
    # A .ttf that is not a font is a user mistake: it must be a ConfigError naming 'font'
    # (the CLI then prints one line), not Pillow's OSError escaping at render time.
    bad = tmp_path / "broken.ttf"
    bad.write_bytes(b"this is not a font")
    with pytest.raises(ConfigError) as info:
        build_renderer(RenderConfig(page_size="tiny", font=str(bad))).render("text")
    assert info.value.field == "font"


# --------------------------------------------------------------------------- 10. CLI


def test_cli_render_writes_every_page(tmp_path):
    out = tmp_path / "p.png"
    result = run_cli("render", "--text", OVERFLOW_TEXT, "--out", str(out), "--page-size", "tiny")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    pages = [Path(p) for p in report["pages"]]
    assert report["num_pages"] == len(pages) > 1
    assert pages == [out] + [tmp_path / f"p-{i}.png" for i in range(2, len(pages) + 1)]
    for path in pages:
        assert path.is_file()
        image = decode(path.read_bytes())
        assert image.size == (512, 512) and image.mode == "L"
    assert sorted(tmp_path.glob("p*.png")) == sorted(pages)
    assert report["page_size"] == [512, 512]
    assert report["truncated_chars"] == 0
    assert report["vision_tokens"] == 257 * len(pages)
    assert report["vision_tokens_per_page"] == vision_token_table(512, 512)


def test_cli_render_text_file(tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("Ça déjà vu.\nПривет, мир!\n你好，世界。", encoding="utf-8")
    out = tmp_path / "out" / "page.png"
    result = run_cli("render", "--text-file", str(source), "--out", str(out),
                     "--page-size", "300x300")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["pages"] == [str(out)] and out.is_file()
    assert report["num_pages"] == 1 and report["num_lines"] == 3
    assert report["missing_glyphs"] == 0
    assert report["num_chars"] == len(normalize_text(source.read_text(encoding="utf-8")))


def test_cli_bad_font_size_is_one_line_error(tmp_path):
    result = run_cli("render", "--text", "hello", "--out", str(tmp_path / "p.png"),
                     "--font-size", "1000")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == "error: font_size must be between 6 and 96; got 1000"
    assert not (tmp_path / "p.png").exists()


def test_cli_missing_text_file_is_one_line_error(tmp_path):
    missing = tmp_path / "missing.txt"
    result = run_cli("render", "--text-file", str(missing), "--out", str(tmp_path / "p.png"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error:")
    assert str(missing) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_glyphs_count_only_characters_on_kept_pages():
    text = " ".join(["word"] * 400) + " \ue000"
    cut = build_renderer(RenderConfig(page_size="tiny", overflow="truncate")).render(text)
    assert cut.stats.truncated_chars > 0
    assert cut.stats.missing_glyphs == 0 and cut.stats.missing_glyph_chars == ""
    kept = build_renderer(RenderConfig(page_size="tiny")).render(text)
    assert kept.stats.missing_glyphs == 1 and kept.stats.missing_glyph_chars == "\ue000"


def test_fallback_font_does_not_depend_on_earlier_documents():
    # U+2322 is only in a later fallback font (DejaVu Math here); loading it first must not
    # change which font draws U+210A, which an earlier fallback in preference order has.
    config = RenderConfig(page_size="300x200", margin=10)
    fresh = build_renderer(config).render("\u210a")
    warmed = build_renderer(config)
    assert warmed.render("\u2322").stats.missing_glyphs == 0
    again = warmed.render("\u210a")
    assert fresh.stats.missing_glyphs == again.stats.missing_glyphs == 0
    assert decode(fresh.pages[0]).tobytes() == decode(again.pages[0]).tobytes()


def test_text_tokens_of_a_truncated_document_count_the_kept_text():
    text = " ".join(["word"] * 600)
    full = build_renderer(RenderConfig(page_size="tiny")).render(text).stats
    cut = build_renderer(RenderConfig(page_size="tiny", overflow="truncate")).render(text).stats
    assert cut.truncated_chars > 0 and cut.num_pages == 1
    assert cut.text_tokens < full.text_tokens
    assert cut.compression_ratio == round(cut.text_tokens / cut.vision_tokens, 4)


def test_min_font_size_only_matters_for_shrink():
    assert from_dict(RenderConfig, {"font_size": 8}).font_size == 8
    with pytest.raises(ConfigError, match="min_font_size"):
        from_dict(RenderConfig, {"font_size": 8, "overflow": "shrink"})


def test_cli_render_out_without_suffix_gets_png_names(tmp_path):
    result = run_cli("render", "--text", " ".join(["word"] * 400), "--out",
                     str(tmp_path / "page"), "--page-size", "tiny")
    assert result.returncode == 0, result.stderr
    pages = json.loads(result.stdout)["pages"]
    assert pages[:2] == [str(tmp_path / "page.png"), str(tmp_path / "page-2.png")]
