"""Text layout by measured pixel width: normalization, greedy word wrap and pagination.

Widths come from the actual fonts (with per-character fallback), never from character counts.
Paragraphs are kept, words longer than a line are broken, tabs advance to tab stops, runs of
spaces inside a line keep their width and collapse at a line break. Paragraphs in scripts
that run right to left or need shaping are laid out as ``bidi.py`` describes; all other
text keeps the basic engine's fast path.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass, field

from deepsynth.render.bidi import (COMPLEX_CHAR, LTR, RTL, needs_complex_layout, paragraph_direction,
                                   place_line, word_directions)
from deepsynth.render.fonts import CAN_SHAPE, MISSING, FontSet

TAB_SPACES = 4
WORDS_CACHED = 50_000  # measured words a Measurer keeps (per font set and size)
_LINE_BREAKS = re.compile(r"\r\n|[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
_TOKENS = re.compile(r"[ \t]+|[^ \t]+")
# Control characters (Unicode category Cc) other than tab and newline, and the format
# characters (Cf) that draw nothing: soft hyphen, zero-width space, bidi marks, BOM.
_INVISIBLE = re.compile(
    "[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f\u00ad\u0600-\u0605\u061c\u06dd\u070f"
    "\u0890\u0891\u08e2\u180e\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f"
    "\ufeff\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f]")

# Zero-width (non-)joiners, except between two characters of scripts that are shaped.
_STRAY_JOINER = re.compile(f"[\u200c\u200d](?!{COMPLEX_CHAR})|(?<!{COMPLEX_CHAR})[\u200c\u200d]")


def normalize_text(text: str) -> str:
    """NFC, one kind of line break, and no invisible control or format characters (but
    the joiners that shape a word of a complex script: Persian's non-joiner, say)."""
    text = _LINE_BREAKS.sub("\n", unicodedata.normalize("NFC", text))
    text = _INVISIBLE.sub("", text)
    if "\u200c" in text or "\u200d" in text:
        text = _STRAY_JOINER.sub("", text)
    return text


@dataclass(frozen=True)
class Run:
    """Consecutive characters drawn with one font."""

    text: str
    font: int  # index into FontSet.fonts; MISSING runs are drawn with the primary font


@dataclass(frozen=True, eq=False, slots=True)
class Word:
    text: str
    runs: tuple[Run, ...]  # in logical order
    width: float
    missing: int  # characters no font can draw
    key: str  # what its drawn mask is cached by: the text, and the direction if shaped
    direction: str = ""  # "" for the basic engine; ltr or rtl: shaped with libraqm


def _joins_previous_run(char: str) -> bool:
    # Marks, vowel signs and joiners are shaped with the character they belong to.
    return unicodedata.category(char) in ("Mn", "Mc", "Me", "Cf")


@dataclass
class Line:
    words: list[tuple[float, Word]] = field(default_factory=list)  # (x offset, word)

    @property
    def text(self) -> str:
        return " ".join(w.text for _, w in self.words)


class Measurer:
    """Splits words into font runs and measures them, caching by word."""

    def __init__(self, fonts: FontSet, cache_size: int = WORDS_CACHED):
        self.fonts = fonts
        self.space = fonts.fonts[0].getlength(" ")
        self._cache: dict[str, Word] = {}
        self._cache_size = cache_size
        self._shaped: dict[str, Word] = {}

    def _runs(self, text: str, keep_marks: bool) -> tuple[list[Run], int]:
        """``text`` as runs of characters one font draws, and the count of characters no
        font has (drawn with the first). With ``keep_marks`` (shaped text) a joining mark
        stays in the run before it, whose font shapes it with its base."""
        runs: list[Run] = []
        missing = 0
        for char in text:
            if keep_marks and runs and _joins_previous_run(char):
                runs[-1] = Run(runs[-1].text + char, runs[-1].font)
                continue
            index = self.fonts.font_index(char)
            if index == MISSING:
                missing += 1
                index = 0
            if runs and runs[-1].font == index:
                runs[-1] = Run(runs[-1].text + char, index)
            else:
                runs.append(Run(char, index))
        return runs, missing

    def word(self, text: str) -> Word:
        cached = self._cache.get(text)
        if cached is not None:
            return cached
        runs, missing = self._runs(text, keep_marks=False)
        width = sum(self.fonts.fonts[r.font].getlength(r.text) for r in runs)
        word = Word(text, tuple(runs), width, missing, text)
        if len(self._cache) >= self._cache_size:
            self._cache.clear()  # bounded memory; a full refill is cheap next to rendering
        self._cache[text] = word
        return word

    def shaped(self, text: str, direction: str) -> Word:
        """A word measured with libraqm in ``direction`` (ltr or rtl)."""
        key = f"{direction}\x00{text}"
        cached = self._shaped.get(key)
        if cached is not None:
            return cached
        runs, missing = self._runs(text, keep_marks=True)
        if not CAN_SHAPE and direction == RTL:  # unshaped, but at least in reading order
            runs = [Run(r.text[::-1], r.font) for r in runs]
        width = sum(self.fonts.shaping(r.font).getlength(r.text, **_direction(direction))
                    for r in runs)
        word = Word(text, tuple(runs), width, missing, key, direction)
        if len(self._shaped) >= self._cache_size:
            self._shaped.clear()
        self._shaped[key] = word
        return word


def _direction(direction: str) -> dict:
    """Keyword arguments of Pillow's text calls for a shaped run."""
    return {"direction": direction} if CAN_SHAPE else {}


# Kinsoku: characters a line must not start with (closing punctuation, iteration and
# prolonged-sound marks, small kana) or end with (opening brackets), in CJK text.
_NO_LINE_START = frozenset(
    "。，、．！？：；）」』】〕〉》〗〙〛｝］｠〞〟’”…‥・ー々〻ゝゞヽヾ"
    "ぁぃぅぇぉっゃゅょゎゕゖァィゥェォッャュョヮヵヶㇰㇱㇲㇳㇴㇵㇶㇷㇸㇹㇺㇻㇼㇽㇾㇿ"
    ",.!?:;)]}%")
_NO_LINE_END = frozenset("「『（【〔〈《〖〘〚｛［｟〝‘“([{")


def _kinsoku(text: str, cut: int) -> int:
    """Move a cut of ``text`` back so the next piece does not start with closing punctuation
    and this one does not end with an opening bracket (never to an empty piece)."""
    while cut > 1 and (text[cut] in _NO_LINE_START or text[cut - 1] in _NO_LINE_END):
        cut -= 1
    return cut


def _break_word(text: str, measure, available: float) -> list[Word]:
    """Cut a word wider than a line into pieces that each fit (at least one character)."""
    pieces: list[Word] = []
    rest = text
    while rest:
        if measure(rest).width <= available:
            pieces.append(measure(rest))
            break
        lo, hi = 1, len(rest) - 1  # largest prefix that fits, by binary search
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if measure(rest[:mid]).width <= available:
                lo = mid
            else:
                hi = mid - 1
        lo = _kinsoku(rest, lo)
        pieces.append(measure(rest[:lo]))
        rest = rest[lo:]
    return pieces


def _tab_gap(position: float, tab: float, space: float) -> float:
    """Whitespace of a tab at ``position``: to the next tab stop at least a space away, so
    a word ending just before a stop is not glued to the next one."""
    gap = tab - position % tab
    return gap + tab if gap < space else gap


def wrap_paragraph(paragraph: str, measurer: Measurer, available: float) -> list[Line]:
    """Greedy wrap of one paragraph into lines no wider than ``available`` px."""
    lines = [Line()]
    x = 0.0
    pending = 0.0  # whitespace width waiting for the next word on this line
    tab = measurer.space * TAB_SPACES
    tokens = _TOKENS.findall(paragraph)
    measure, directions, base = measurer.word, None, LTR
    if needs_complex_layout(paragraph):
        base = paragraph_direction(paragraph)
        directions = iter(word_directions([t for t in tokens if t[0] not in " \t"], base))
    for token in tokens:
        if token[0] in " \t":
            if lines[-1].words or len(lines) == 1:  # whitespace at a wrap point collapses
                for char in token:
                    pending += _tab_gap(x + pending, tab, measurer.space) if char == "\t" \
                        else measurer.space
            continue
        if directions is not None:
            measure = functools.partial(measurer.shaped, direction=next(directions))
        word = measure(token)
        pieces = [word] if word.width <= available else _break_word(token, measure, available)
        for piece in pieces:
            if lines[-1].words and x + pending + piece.width > available:
                lines.append(Line())
                x, pending = 0.0, 0.0
            start = min(x + pending, max(0.0, available - piece.width))
            lines[-1].words.append((start, piece))
            x, pending = start + piece.width, 0.0
    if directions is not None:
        for line in lines:
            line.words = place_line(line.words, base, available)
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
    pages: list[list[Line]] = [[]]
    for line in lines:
        if len(pages[-1]) == per_page:
            pages.append([])
        if len(pages) > 1 and not pages[-1] and not line.words:
            continue  # a continuation page starts with text, not a paragraph's blank line
        pages[-1].append(line)
    return Layout(pages, sum(len(page) for page in pages))


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
