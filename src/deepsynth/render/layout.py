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
# Control characters (Unicode category Cc) other than tab and newline, and the format
# characters (Cf) that draw nothing: soft hyphen, zero-width space and joiners, bidi marks, BOM.
_INVISIBLE = re.compile(
    "[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f\u00ad\u0600-\u0605\u061c\u06dd\u070f"
    "\u0890\u0891\u08e2\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f"
    "\ufeff\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f]")


def normalize_text(text: str) -> str:
    """NFC, one kind of line break, and no invisible control or format characters."""
    text = _LINE_BREAKS.sub("\n", unicodedata.normalize("NFC", text))
    return _INVISIBLE.sub("", text)


@dataclass(frozen=True)
class Run:
    """Consecutive characters drawn with one font."""

    text: str
    font: int  # index into FontSet.fonts; MISSING runs are drawn with the primary font


@dataclass(frozen=True, eq=False, slots=True)
class Word:
    text: str
    runs: tuple[Run, ...]
    width: float
    missing: int  # characters no font can draw


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
        word = Word(text, tuple(runs), width, missing)
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
    return Layout(pages, len(lines))


def missing_glyphs(pages: list[list[Line]], fonts: FontSet) -> tuple[int, str]:
    """How many drawn characters no font has, and which ones (distinct, in order)."""
    distinct: dict[str, None] = {}
    count = 0
    for page in pages:
        for line in page:
            for _, word in line.words:
                if word.missing:
                    count += word.missing
                    distinct.update((c, None) for c in word.text
                                    if fonts.font_index(c) == MISSING)
    return count, "".join(distinct)
