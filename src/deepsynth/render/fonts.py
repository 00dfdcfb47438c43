"""Fonts: the bundled primary font, system fallback fonts, and which font draws each character.

The primary font ships inside the package so the same text gives the same pixels everywhere.
Characters it lacks are drawn with the first system font that has them (Noto CJK, for
example); characters no font has are counted as missing (they would print as empty boxes).
"""

from __future__ import annotations

import functools
import os
import unicodedata
from importlib import resources
from pathlib import Path

from fontTools.ttLib import TTFont
from PIL import ImageFont, features

from deepsynth.errors import ConfigError

BUNDLED_FONTS = ("DejaVuSans", "DejaVuSansMono", "DejaVuSerif")
FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", "~/.local/share/fonts", "~/.fonts")
FONT_SUFFIXES = (".ttf", ".otf", ".ttc")
_STYLE_WORDS = ("bold", "italic", "oblique", "light", "thin", "black", "medium", "semibold",
                "extralight", "condensed", "mono", "demilight", "heavy", "extrabold")
# Scripts a summarization corpus is likely to contain come first, so lookups stop early.
_PREFERRED = ("notosans-regular", "notosanscjk", "notoserifcjk", "dejavusans", "notosans",
              "freesans", "liberationsans", "droidsansfallback", "unifont")

MISSING = -1
# libraqm (with FriBiDi and HarfBuzz) shapes right-to-left and complex scripts; without it
# such words are drawn unshaped (right-to-left ones with their characters reversed).
CAN_SHAPE = features.check("raqm")


def bundled_font_path(name: str) -> Path:
    return Path(str(resources.files("deepsynth.resources") / "fonts" / f"{name}.ttf"))


def resolve_font(font: str) -> Path:
    """A bundled font name or a path to a font file; anything else is a clear error."""
    if font in BUNDLED_FONTS:
        return bundled_font_path(font)
    path = Path(font).expanduser()
    if path.is_file() and path.suffix.lower() in FONT_SUFFIXES:
        try:
            ImageFont.truetype(str(path), 12)
        except OSError as exc:
            raise ConfigError("font", f"{font!r} is not a readable font file ({exc})") from None
        return path
    raise ConfigError("font", f"must be a bundled font ({', '.join(BUNDLED_FONTS)}) or a path "
                      f"to a .ttf/.otf/.ttc file; got {font!r}")


def _is_regular(path: Path) -> bool:
    stem = path.stem.lower().replace("_", "-")
    parts = stem.replace("-", " ").split()
    return not any(word in part for part in parts[1:] for word in _STYLE_WORDS) and not any(
        stem.endswith(word) for word in _STYLE_WORDS)


def _priority(path: Path) -> tuple[int, str]:
    stem = path.stem.lower().replace(" ", "")
    for rank, prefix in enumerate(_PREFERRED):
        if stem.startswith(prefix):
            return rank, str(path)
    return len(_PREFERRED), str(path)


@functools.lru_cache(maxsize=1)
def system_fallback_fonts() -> tuple[Path, ...]:
    """Regular-style font files installed on the system, in a stable order of preference."""
    found: list[Path] = []
    for folder in FONT_DIRS:
        root = Path(os.path.expanduser(folder))
        if not root.is_dir():
            continue
        for path in root.rglob("*"):
            if path.suffix.lower() in FONT_SUFFIXES and _is_regular(path):
                found.append(path)
    return tuple(sorted(set(found), key=_priority))


@functools.lru_cache(maxsize=64)
def font_codepoints(path: str) -> frozenset[int]:
    """The code points a font file maps to glyphs (first face of a collection)."""
    try:
        with TTFont(path, fontNumber=0, lazy=True) as font:
            cmap = font.getBestCmap() or {}
    except Exception:  # an unreadable font is simply not a fallback
        return frozenset()
    return frozenset(cmap)


def _needs_no_glyph(char: str) -> bool:
    return char.isspace() or unicodedata.category(char) in ("Cc", "Cf", "Mn", "Me")


class FontSet:
    """Chooses, per character, the first font of the chain that can draw it."""

    def __init__(self, primary: Path, size: int, use_fallbacks: bool = True):
        self.primary = Path(primary)
        self.size = size
        self.use_fallbacks = use_fallbacks
        self._candidates = [p for p in system_fallback_fonts()
                            if p.name != self.primary.name] if use_fallbacks else []
        self._paths: list[Path] = [self.primary]
        self._fonts: list[ImageFont.FreeTypeFont] = [self._load(self.primary)]
        self._primary_cmap = font_codepoints(str(self.primary))
        self._by_char: dict[str, int] = {}
        self._shaping: dict[int, ImageFont.FreeTypeFont] = {}

    def _load(self, path: Path) -> ImageFont.FreeTypeFont:
        # The basic layout engine gives identical pixels with or without libraqm installed.
        return ImageFont.truetype(str(path), self.size, layout_engine=ImageFont.Layout.BASIC)

    def shaping(self, index: int) -> ImageFont.FreeTypeFont:
        """Font ``index`` loaded with libraqm, for words that need shaping or bidi layout
        (the basic engine's font where libraqm is missing)."""
        font = self._shaping.get(index)
        if font is None:
            font = ImageFont.truetype(str(self._paths[index]), self.size,
                                      layout_engine=ImageFont.Layout.RAQM) \
                if CAN_SHAPE else self._fonts[index]
            self._shaping[index] = font
        return font

    @property
    def fonts(self) -> list[ImageFont.FreeTypeFont]:
        return self._fonts

    @property
    def paths(self) -> list[Path]:
        return self._paths

    def font_index(self, char: str) -> int:
        """Index into :attr:`fonts` of the font that draws ``char``, or MISSING."""
        found = self._by_char.get(char)
        if found is not None:
            return found
        code = ord(char)
        if code in self._primary_cmap or _needs_no_glyph(char):
            found = 0
        else:
            found = self._fallback_index(code)
        self._by_char[char] = found
        return found

    def _fallback_index(self, code: int) -> int:
        # Always the first candidate in preference order that has the character, whatever
        # was loaded before: pixels must not depend on the documents rendered earlier.
        for path in self._candidates:
            if code not in font_codepoints(str(path)):
                continue
            if path not in self._paths:
                self._paths.append(path)
                self._fonts.append(self._load(path))
            return self._paths.index(path)
        return MISSING
