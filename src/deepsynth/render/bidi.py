"""Right-to-left and shaped text: which paragraphs need it, word directions, visual order.

Most text needs neither: it is measured and drawn with Pillow's basic layout engine, one
font run after the other, left to right (the fast path). A paragraph with a character of a
script that needs shaping or runs right to left (Hebrew, Arabic, Syriac, Thaana, the Indic
scripts, Thai, Lao, Tibetan, Myanmar, Khmer, Mongolian...) takes the slow path:

- its direction is that of its first strong character (rule P2 of the Unicode
  Bidirectional Algorithm), left to right if it has none;
- each word gets a direction: that of its first strong character; a number (European
  digits) after left-to-right text is left to right, otherwise it reads as right to left
  (rules W7 and N1); a word of punctuation only takes the direction of the words on both
  sides when they agree, else the paragraph's (N1, N2);
- words are shaped whole with libraqm (HarfBuzz, FriBiDi) in their direction: Arabic
  joining, mirrored brackets, Indic conjuncts and vowel signs;
- lines are wrapped in logical order, then each line's words are put in visual order
  (rule L2, at word granularity) and a right-to-left paragraph's lines are aligned right.

Explicit bidi controls (embeddings, overrides, isolates, marks) are removed by
normalization, so they do not steer the order.
"""

from __future__ import annotations

import re
import unicodedata

LTR, RTL = "ltr", "rtl"

# Scripts that need shaping or run right to left (BMP blocks, and the historic right-to-
# left blocks of the supplementary planes). Anything else keeps the basic engine.
COMPLEX_CHAR = (
    "[\u0590-\u08ff\u0900-\u0dff\u0e00-\u0fff\u1000-\u109f\u1780-\u18af\u1a00-\u1aff"
    "\ua800-\ua82f\ua840-\ua8ff\ua980-\uaadf\uabc0-\uabff\ufb1d-\ufdff\ufe70-\ufefe"
    "\U00010800-\U00010fff\U00011000-\U000111ff\U0001e800-\U0001efff]")
_COMPLEX = re.compile(COMPLEX_CHAR)


def needs_complex_layout(text: str) -> bool:
    """Whether ``text`` holds a character the basic engine would draw wrongly."""
    return not text.isascii() and _COMPLEX.search(text) is not None


def _strong(char: str) -> str | None:
    kind = unicodedata.bidirectional(char)
    if kind == "L":
        return LTR
    if kind in ("R", "AL", "AN"):  # Arabic-Indic digits are ordered as right to left
        return RTL
    return None


def _word_class(word: str) -> str | None:
    """ltr, rtl, 'num' (European digits, no strong character) or None (neutral)."""
    number = False
    for char in word:
        strong = _strong(char)
        if strong:
            return strong
        number = number or unicodedata.bidirectional(char) == "EN"
    return "num" if number else None


def paragraph_direction(paragraph: str) -> str:
    for char in paragraph:
        strong = _strong(char)
        if strong:
            return strong
    return LTR


def word_directions(words: list[str], base: str) -> list[str]:
    """The direction each word is shaped and ordered in, in a paragraph of ``base``."""
    resolved: list[str | None] = []
    previous = base
    for word in words:
        kind = _word_class(word)
        if kind == "num":
            kind = LTR if previous == LTR else RTL
        elif kind:
            previous = kind
        resolved.append(kind)
    out: list[str] = []
    for index, kind in enumerate(resolved):
        if kind is None:  # a neutral: the neighbours' direction when they agree
            before = next((k for k in reversed(resolved[:index]) if k), base)
            after = next((k for k in resolved[index + 1:] if k), base)
            kind = before if before == after else base
        out.append(kind)
    return out


def _visual_order(levels: list[int]) -> list[int]:
    """Indices in left-to-right order: reverse runs from the highest level down (L2)."""
    order = list(range(len(levels)))
    odd = [level for level in levels if level % 2]
    if not odd:
        return order
    for level in range(max(levels), min(odd) - 1, -1):
        k = 0
        while k < len(order):
            if levels[order[k]] < level:
                k += 1
                continue
            end = k
            while end < len(order) and levels[order[end]] >= level:
                end += 1
            order[k:end] = order[k:end][::-1]
            k = end
    return order


def place_line(words: list, base: str, available: float) -> list:
    """``(x, word)`` pairs of one line, laid out logically from its start, moved to their
    visual positions; the whitespace between two words stays between them."""
    if not words:
        return words
    gaps, end = [], 0.0
    for x, word in words:
        gaps.append(x - end)
        end = x + word.width
    rtl_level = 1
    ltr_level = 0 if base == LTR else 2
    order = _visual_order([rtl_level if w.direction == RTL else ltr_level for _, w in words])
    placed: list = [None] * len(words)
    cursor = gaps[0] if base == LTR else 0.0  # a paragraph's indentation is at its start
    for k, index in enumerate(order):
        if k:
            cursor += gaps[max(index, order[k - 1])]
        placed[index] = (cursor, words[index][1])
        cursor += words[index][1].width
    if base == RTL:
        shift = max(0.0, available - cursor - gaps[0])
        placed = [(x + shift, word) for x, word in placed]
    return placed
