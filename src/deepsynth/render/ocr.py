"""Reading rendered pages back with an OCR engine (Tesseract), and the character error rate.

Tesseract is a system program (Debian: ``tesseract-ocr`` and a language pack per script,
``tesseract-ocr-ara`` ...), run as a subprocess: its Python wrappers add nothing but a
dependency. Which language pack reads a text follows from its script.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
import unicodedata

import numpy as np

from deepsynth.errors import DeepSynthError
from deepsynth.render.layout import normalize_text

# Script of a character (by the first word of its Unicode name) -> Tesseract language.
SCRIPT_LANGUAGES = {"ARABIC": "ara", "HEBREW": "heb", "DEVANAGARI": "hin", "LATIN": "eng",
                    "CYRILLIC": "rus", "GREEK": "ell", "CJK": "chi_sim", "HIRAGANA": "jpn",
                    "KATAKANA": "jpn", "HANGUL": "kor", "THAI": "tha"}
OCR_TIMEOUT_S = 60


class OcrUnavailable(DeepSynthError):
    """Tesseract, or the language pack a text needs, is not installed."""


def tesseract_path() -> str | None:
    return shutil.which("tesseract")


@functools.lru_cache(maxsize=1)
def installed_languages() -> frozenset[str]:
    if not tesseract_path():
        return frozenset()
    listed = subprocess.run([tesseract_path(), "--list-langs"], capture_output=True,
                            text=True, timeout=OCR_TIMEOUT_S).stdout
    return frozenset(line.strip() for line in listed.splitlines()[1:] if line.strip())


def script_of(char: str) -> str | None:
    """The script a letter belongs to (a key of SCRIPT_LANGUAGES, or another name's first
    word); None for digits, punctuation, spaces and marks."""
    if not unicodedata.category(char).startswith("L"):
        return None
    name = unicodedata.name(char, "")
    return name.split(" ", 1)[0] if name else None


def dominant_script(text: str) -> str | None:
    counts: dict[str, int] = {}
    for char in text:
        script = script_of(char)
        if script:
            counts[script] = counts.get(script, 0) + 1
    return max(counts, key=counts.get) if counts else None


def language_for(text: str) -> tuple[str | None, str | None]:
    """(dominant script, the Tesseract languages that read it): a script's pack, plus
    English where Latin letters are mixed in; (script, None) when no pack is installed."""
    script = dominant_script(text)
    if script is None:
        return None, None
    pack = SCRIPT_LANGUAGES.get(script)
    if pack is None or pack not in installed_languages():
        return script, None
    if pack != "eng" and "eng" in installed_languages() and any(
            script_of(c) == "LATIN" for c in text):
        pack += "+eng"
    return script, pack


def _check(language: str) -> None:
    if not tesseract_path():
        raise OcrUnavailable("tesseract is not installed (apt-get install tesseract-ocr)")
    for pack in language.split("+"):  # "eng+heb": several packs read one page
        if pack not in installed_languages():
            raise OcrUnavailable(f"Tesseract has no {pack!r} language pack (apt-get install "
                                 f"tesseract-ocr-{pack.replace('_', '-')})")


def _tesseract(inputs: list[str], language: str, stdin: bytes | None,
               timeout: float) -> subprocess.CompletedProcess:
    # One thread per process: pages are read in parallel, and Tesseract's own threads only
    # contend with each other on a small page.
    try:
        return subprocess.run([tesseract_path(), *inputs, "stdout", "-l", language, "--psm", "6"],
                              input=stdin, capture_output=True, timeout=timeout,
                              env={**os.environ, "OMP_THREAD_LIMIT": "1"})
    except subprocess.TimeoutExpired:
        raise OcrUnavailable(f"tesseract did not finish within {timeout:g} s") from None


def ocr_png(png: bytes, language: str) -> str:
    """The text Tesseract reads on one page (one uniform block of text, ``--psm 6``) with
    ``language``: a language pack's name, or several joined by "+"."""
    _check(language)
    done = _tesseract(["stdin"], language, png, OCR_TIMEOUT_S)
    if done.returncode:
        raise OcrUnavailable(f"tesseract failed: {done.stderr.decode(errors='replace')[-300:]}")
    return done.stdout.decode("utf-8", errors="replace")


def ocr_pngs(pngs: list[bytes], language: str) -> list[str]:
    """The text of several pages, read by one Tesseract process: it loads its model once
    (a quarter of the time of a small page) and separates pages' texts by form feeds."""
    if len(pngs) == 1:
        return [ocr_png(pngs[0], language)]
    _check(language)
    with tempfile.TemporaryDirectory(prefix="deepsynth-ocr-") as folder:
        names = []
        for index, png in enumerate(pngs):
            names.append(os.path.join(folder, f"{index}.png"))
            with open(names[-1], "wb") as file:
                file.write(png)
        listing = os.path.join(folder, "pages.txt")
        with open(listing, "w", encoding="utf-8") as file:
            file.write("\n".join(names) + "\n")
        done = _tesseract([listing], language, None, OCR_TIMEOUT_S * len(pngs))
    texts = done.stdout.decode("utf-8", errors="replace").split("\f")
    if done.returncode or len(texts) != len(pngs):  # one page at a time says what failed
        return [ocr_png(png, language) for png in pngs]
    return texts


def comparable(text: str) -> str:
    """Text as compared: normalized as the renderer draws it (Tesseract's bidi marks go),
    whitespace runs as one space (layout is not read back)."""
    return " ".join(normalize_text(text).split())


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance, one numpy row at a time (pages hold thousands of characters)."""
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return len(a)
    target = np.array([ord(c) for c in b], dtype=np.int64)
    steps = np.arange(len(b) + 1, dtype=np.int64)
    row = steps.copy()
    for i, char in enumerate(a, 1):
        best = np.empty_like(row)
        best[0] = i
        # substitution (or match) and deletion; insertion is a running minimum along the row
        np.minimum(row[:-1] + (target != ord(char)), row[1:] + 1, out=best[1:])
        row = np.minimum.accumulate(best - steps) + steps
    return int(row[-1])


def character_error_rate(expected: str, read: str) -> float:
    expected, read = comparable(expected), comparable(read)
    if not expected:
        return 0.0 if not read else 1.0
    return edit_distance(expected, read) / len(expected)
