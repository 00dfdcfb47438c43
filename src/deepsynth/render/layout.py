"""Text layout by measured pixel width: normalization, greedy word wrap and pagination.

Widths come from the actual fonts (with per-character fallback), never from character counts.
Paragraphs are kept, words longer than a line are broken, tabs advance to tab stops, runs of
spaces inside a line keep their width and collapse at a line break. Scripts are laid out left
to right: right-to-left scripts (Arabic, Hebrew) and complex shaping are out of scope.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from deepsynth.render.fonts import MISSING, FontSet

TAB_SPACES = 4
_LINE_BREAKS = re.compile(r"\r\n|[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
_TOKENS = re.compile(r"[ \t]+|[^ \t]+")
_INVISIBLE = {"Cc", "Cf"}


def normalize_text(text: str) -> str:
    """NFC, one kind of line break, and no invisible control or format characters."""
    text = _LINE_BREAKS.sub("\n", unicodedata.normalize("NFC", text))
    if text.isascii() and text.isprintable():
        return text
    return "".join(c for c in text if c in "\n\t" or unicodedata.category(c) not in _INVISIBLE
                   or c == "\u200d")


@dataclass(frozen=True)
class Run:
    """Consecutive characters drawn with one font."""

    text: str
    font: int  # index into FontSet.fonts; MISSING runs are drawn with the primary font


@dataclass(frozen=True)
class Word:
    runs: tuple[Run, ...]
    width: float
    missing: int  # characters no font can draw

    @property
    def text(self) -> str:
        return "".join(r.text for r in self.runs)


@dataclass
class Line:
    words: list[tuple[float, Word]] = field(default_factory=list)  # (x offset, word)

    @property
    def text(self) -> str:
        return " ".join(w.text for _, w in self.words)


class Measurer:
    """Splits words into font runs and measures them, caching by word."""

    def __init__(self, fonts: FontSet, cache_size: int = 50_000):
        self.fonts = fonts
        self.space = fonts.fonts[0].getlength(" ")
        self._cache: dict[str, Word] = {}
        self._cache_size = cache_size

    def word(self, text: str) -> Word:
        cached = self._cache.get(text)
        if cached is not None:
            return cached
        runs: list[Run] = []
        missing = 0
        for char in text:
            index = self.fonts.font_index(char)
            if index == MISSING:
                missing += 1
                index = 0
            if runs and runs[-1].font == index:
                runs[-1] = Run(runs[-1].text + char, index)
            else:
                runs.append(Run(char, index))
        width = sum(self.fonts.fonts[r.font].getlength(r.text) for r in runs)
        word = Word(tuple(runs), width, missing)
        if len(self._cache) >= self._cache_size:
            self._cache.clear()  # bounded memory; a full refill is cheap next to rendering
        self._cache[text] = word
        return word


def _break_word(word: Word, text: str, measurer: Measurer, available: float) -> list[Word]:
    """Cut a word wider than a line into pieces that each fit (at least one character)."""
    pieces: list[Word] = []
    rest = text
    while rest:
        if measurer.word(rest).width <= available:
            pieces.append(measurer.word(rest))
            break
        lo, hi = 1, len(rest) - 1  # largest prefix that fits, by binary search
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if measurer.word(rest[:mid]).width <= available:
                lo = mid
            else:
                hi = mid - 1
        pieces.append(measurer.word(rest[:lo]))
        rest = rest[lo:]
    return pieces


def wrap_paragraph(paragraph: str, measurer: Measurer, available: float) -> list[Line]:
    """Greedy wrap of one paragraph into lines no wider than ``available`` px."""
    lines = [Line()]
    x = 0.0
    pending = 0.0  # whitespace width waiting for the next word on this line
    tab = measurer.space * TAB_SPACES
    for token in _TOKENS.findall(paragraph):
        if token[0] in " \t":
            if lines[-1].words or len(lines) == 1:  # whitespace at a wrap point collapses
                for char in token:
                    pos = x + pending
                    pending += (tab - pos % tab) if char == "\t" else measurer.space
            continue
        word = measurer.word(token)
        pieces = [word] if word.width <= available else _break_word(
            word, token, measurer, available)
        for piece in pieces:
            if lines[-1].words and x + pending + piece.width > available:
                lines.append(Line())
                x, pending = 0.0, 0.0
            start = min(x + pending, max(0.0, available - piece.width))
            lines[-1].words.append((start, piece))
            x, pending = start + piece.width, 0.0
    return lines


@dataclass
class Layout:
    pages: list[list[Line]]
    line_count: int
    missing_glyphs: int
    missing_chars: str  # the distinct characters no font could draw


def layout_text(text: str, measurer: Measurer, width: int, height: int, margin: int,
                line_height: int) -> Layout:
    """Lay out normalized ``text`` on pages of ``width`` x ``height`` px."""
    available = width - 2 * margin
    per_page = max(1, (height - 2 * margin) // line_height)
    lines: list[Line] = []
    for paragraph in text.split("\n"):
        lines.extend(wrap_paragraph(paragraph, measurer, available))
    while lines and not lines[-1].words:
        lines.pop()
    pages = [lines[i:i + per_page] for i in range(0, len(lines), per_page)] or [[]]
    missing_chars: dict[str, None] = {}
    missing = 0
    for line in lines:
        for _, word in line.words:
            if word.missing:
                missing += word.missing
                for char in word.text:
                    if measurer.fonts.font_index(char) == MISSING:
                        missing_chars[char] = None
    return Layout(pages, len(lines), missing, "".join(missing_chars))
