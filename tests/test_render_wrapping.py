"""Wrapping details a reader notices: continuation pages, kinsoku in CJK text, tab gaps.

Real fonts and the real layout; each test builds the case that the old layout got wrong.
"""

from __future__ import annotations

import pytest

from deepsynth.config import RenderConfig
from deepsynth.render.fonts import FontSet, resolve_font
from deepsynth.render.layout import TAB_SPACES, Measurer, layout_text, normalize_text
from deepsynth.render.renderer import build_renderer

CONFIG = RenderConfig(page_size="300x300", font_size=14, margin=10)


def engine():
    fonts = FontSet(resolve_font(CONFIG.font), CONFIG.font_size, CONFIG.fallback_fonts)
    ascent, descent = fonts.fonts[0].getmetrics()
    line_height = max(1, round((ascent + descent) * CONFIG.line_spacing))
    measurer = Measurer(fonts)

    def layout(text: str):
        return layout_text(normalize_text(text), measurer, *CONFIG.size, CONFIG.margin,
                           line_height)
    return measurer, layout, (CONFIG.size[1] - 2 * CONFIG.margin) // line_height


def test_a_continuation_page_starts_with_text_not_a_blank_line():
    _, layout, per_page = engine()
    # the first page is full exactly before the blank line between two paragraphs
    text = "\n".join(f"line {i}" for i in range(per_page)) + "\n\n\nnext paragraph"
    pages = layout(text).pages
    assert len(pages) == 2 and len(pages[0]) == per_page
    assert [line.text for line in pages[1]] == ["next paragraph"]
    # blank lines at the start of the text (the first page) are kept
    assert layout("\n\nfirst").pages[0][0].words == []
    stats = build_renderer(CONFIG).render(text).stats
    assert stats.num_pages == 2 and stats.num_lines == per_page + 1


@pytest.mark.parametrize("pattern", ["中文，字字、", "他说「好」。", "テストです。ー"])
def test_cjk_lines_never_start_with_closing_punctuation(pattern):
    _, layout, _ = engine()
    lines = [line for page in layout(pattern * 120).pages for line in page]
    assert len(lines) > 5
    for line in lines[1:]:
        assert line.text[0] not in "。，、」ー", line.text
    for line in lines[:-1]:
        assert line.text[-1] != "「", line.text
    # nothing is lost or reordered
    assert "".join(line.text for line in lines) == pattern * 120


def test_a_tab_just_before_a_tab_stop_still_leaves_a_space():
    measurer, layout, _ = engine()
    tab = TAB_SPACES * measurer.space
    # a word ending less than a space before a tab stop
    candidates = (a + b + c for a in "ilmwx" for b in "aeiorst" for c in "abcdefghk")
    word = next(w for w in candidates if 0 < tab - measurer.word(w).width % tab < measurer.space)
    (x0, first), (x1, _) = layout(f"{word}\tnext").pages[0][0].words
    assert x1 - (x0 + first.width) >= measurer.space
    assert x1 % tab == pytest.approx(0) or x1 % tab == pytest.approx(tab)
