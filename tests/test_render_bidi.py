"""Right-to-left and shaped scripts: OCR round trips with Tesseract, visual order, fast path.

The round trips render real pages with the real renderer (bundled DejaVu Sans for Arabic and
Hebrew, the system's Devanagari font) and read them back with Tesseract, installed by
scripts/setup.sh (tesseract-ocr and its ara, heb, hin packs); they are skipped, saying so,
only where Tesseract or a pack is missing.
"""

from __future__ import annotations

import random

import pytest

from deepsynth.config import RenderConfig
from deepsynth.render.bidi import LTR, RTL, needs_complex_layout, word_directions
from deepsynth.render.fonts import FontSet, bundled_font_path
from deepsynth.render.layout import Measurer, wrap_paragraph
from deepsynth.render.ocr import (
    character_error_rate, edit_distance, installed_languages, ocr_png, tesseract_path,
)
from deepsynth.render.renderer import build_renderer

ARABIC = ("تقع مدينة القاهرة على ضفاف نهر النيل، وهي أكبر مدن العالم العربي من حيث عدد "
          "السكان. تأسست المدينة في القرن العاشر الميلادي، وكانت مركزا للعلم والتجارة لعدة "
          "قرون. يزور المدينة كل عام ملايين السياح لمشاهدة الأهرامات والمتاحف والأسواق.")
HEBREW = ("ירושלים היא עיר הבירה של מדינת ישראל והעיר הגדולה ביותר בה. העיר שוכנת בהרי "
          "יהודה, בין הים התיכון לבין ים המלח. בעיר העתיקה נמצאים מקומות קדושים לשלוש "
          "הדתות, ומדי שנה מגיעים אליה מיליוני מבקרים מכל רחבי העולם.")
HINDI = ("भारत दक्षिण एशिया में स्थित एक विशाल देश है। यहाँ अनेक भाषाएँ बोली जाती हैं और "
         "अनेक धर्मों के लोग रहते हैं। गंगा नदी भारत की सबसे पवित्र नदी मानी जाती है।")
MIXED = "The Hebrew word שלום means peace, and the Arabic word سلام means the same in 2024."


def _needs(languages: str):
    missing = [pack for pack in languages.split("+") if pack not in installed_languages()]
    return pytest.mark.skipif(
        not tesseract_path() or bool(missing),
        reason=f"Tesseract or its {'+'.join(missing) or languages} pack is not installed "
               "(scripts/setup.sh installs them as root)")


@pytest.mark.parametrize("text, language", [
    pytest.param(ARABIC, "ara", marks=_needs("ara"), id="arabic"),
    pytest.param(HEBREW, "heb", marks=_needs("heb"), id="hebrew"),
    pytest.param(HINDI, "hin", marks=_needs("hin"), id="devanagari"),
    pytest.param(MIXED, "eng+heb+ara", marks=_needs("eng+heb+ara"), id="mixed-direction"),
])
def test_pages_read_back_with_a_character_error_rate_under_5_percent(text, language):
    document = build_renderer(RenderConfig(page_size="small")).render(text)
    assert document.stats.num_pages == 1 and document.stats.missing_glyphs == 0
    read = ocr_png(document.pages[0], language)
    assert character_error_rate(text, read) < 0.05, read


def _layout(paragraph: str, available: float = 2000.0):
    measurer = Measurer(FontSet(bundled_font_path("DejaVuSans"), 18))
    return wrap_paragraph(paragraph, measurer, available)


def _positions(line) -> dict[str, tuple[float, float]]:
    return {word.text: (x, x + word.width) for x, word in line.words}


def test_a_right_to_left_paragraph_reads_from_the_right_margin():
    words = HEBREW.split()
    lines = _layout(HEBREW, 600.0)
    assert len(lines) > 2
    for line in lines:
        spans = [span for _, span in sorted(_positions(line).items(),
                                            key=lambda item: words.index(item[0]))]
        assert spans[0][1] == pytest.approx(600.0, abs=1)  # first word ends at the right
        # each later word lies to the left of the one before it
        assert all(later[1] < earlier[0] for earlier, later in zip(spans, spans[1:]))


def test_a_mixed_line_keeps_left_to_right_order_around_a_right_to_left_phrase():
    (line,) = _layout("alpha שלום עולם omega")
    at = _positions(line)
    # the Hebrew phrase reads right to left: its second word is drawn left of its first
    assert at["alpha"][1] < at["עולם"][0] < at["שלום"][0] < at["omega"][0]
    assert at["alpha"][0] == 0


def test_a_latin_name_and_its_number_stay_in_order_inside_an_arabic_line():
    (line,) = _layout("يعمل Windows 10 هنا")
    at = _positions(line)
    # reading from the right: يعمل, then "Windows 10" left to right, then هنا
    assert at["هنا"][1] < at["Windows"][0] < at["10"][0] < at["يعمل"][0]


@pytest.mark.parametrize("words, base, expected", [
    (["في", "1990", "و"], RTL, [RTL, RTL, RTL]),
    (["Windows", "10", "هنا"], RTL, [LTR, LTR, RTL]),
    (["שלום", "-", "עולם"], LTR, [RTL, RTL, RTL]),  # a neutral between agreeing neighbours
    (["abc", "-", "עולם"], LTR, [LTR, LTR, RTL]),  # ... else the paragraph's direction
    (["(سلام)"], LTR, [RTL]),
])
def test_word_directions_follow_the_bidi_rules(words, base, expected):
    assert word_directions(words, base) == expected


def test_text_that_needs_neither_keeps_the_fast_path():
    for text in ("Plain Latin text.", "Ça déjà vu, Привет, мир!", "中文摘要 テスト 한국어"):
        assert not needs_complex_layout(text)
        assert all(word.direction == "" for line in _layout(text) for _, word in line.words)
    assert needs_complex_layout("a שלום") and needs_complex_layout("हिन्दी")


def test_devanagari_vowel_signs_and_viramas_are_shaped_with_their_letter():
    measurer = Measurer(FontSet(bundled_font_path("DejaVuSans"), 18))
    word = measurer.shaped("हिन्दी", LTR)
    assert len(word.runs) == 1 and word.missing == 0


def test_edit_distance_matches_the_textbook_recurrence():
    def slow(a, b):
        row = list(range(len(b) + 1))
        for i, ca in enumerate(a, 1):
            new = [i]
            for j, cb in enumerate(b, 1):
                new.append(min(row[j] + 1, new[j - 1] + 1, row[j - 1] + (ca != cb)))
            row = new
        return row[-1]

    rng = random.Random(3)
    for _ in range(200):
        a = "".join(rng.choice("abcש ") for _ in range(rng.randint(0, 12)))
        b = "".join(rng.choice("abcש ") for _ in range(rng.randint(0, 12)))
        assert edit_distance(a, b) == slow(a, b), (a, b)
    assert character_error_rate("kitten", "sitting") == pytest.approx(3 / 6)
    assert character_error_rate("a  b\n", "a b") == 0.0


def test_joiners_are_kept_only_inside_words_of_shaped_scripts():
    from deepsynth.render.layout import normalize_text

    persian = "می\u200cخواهم"  # the non-joiner keeps "mi" apart from the verb
    assert normalize_text(persian) == persian
    assert normalize_text("a\u200db \u200cx\u200c") == "ab x"
    measurer = Measurer(FontSet(bundled_font_path("DejaVuSans"), 18))
    assert measurer.shaped(persian, RTL).width > measurer.shaped("میخواهم", RTL).width
