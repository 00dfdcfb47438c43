"""When pages stop being readable: compression thresholds and missing glyphs, as warnings.

A page's compression is its text tokens per vision token (the vision tokens the model is
fed, ``tokens.row_vision_tokens``). DeepSeek-OCR's own measurements: about 97% OCR precision
below 10x, 79% at 16.5x, 59% near 20x; so a page over 10x is "lossy" and one over 15x
"likely unreadable". The one home of those thresholds and of the warnings' wording, for
``deepsynth render``, the render preview, the generation summary, its job result and the
dataset card.
"""

from __future__ import annotations

LOSSY_RATIO = 10.0
UNREADABLE_RATIO = 15.0
_ADVICE = "use a larger --font-size or --page-size, a smaller --margin, or more pages"


def page_counts(ratios: list[float]) -> dict[str, int]:
    """A document's pages over each threshold (a page over 15x is over 10x too)."""
    return {"lossy_pages": sum(r > LOSSY_RATIO for r in ratios),
            "unreadable_pages": sum(r > UNREADABLE_RATIO for r in ratios)}


def _compression_warnings(lossy: int, unreadable: int, densest: float | None,
                          where: str) -> list[dict]:
    densest_text = f" (densest {densest:.1f}x)" if densest is not None else ""
    if unreadable:
        return [{"kind": "likely_unreadable", "pages": unreadable,
                 "message": f"{unreadable} page(s){where} hold over {UNREADABLE_RATIO:g} text "
                            f"tokens per vision token{densest_text}: likely unreadable to the "
                            f"model; {_ADVICE}"}]
    if lossy:
        return [{"kind": "lossy", "pages": lossy,
                 "message": f"{lossy} page(s){where} hold over {LOSSY_RATIO:g} text tokens per "
                            f"vision token{densest_text}: lossy (OCR precision falls below "
                            f"~97%); {_ADVICE}"}]
    return []


def _glyph_warning(missing: int, where: str, chars: str = "") -> list[dict]:
    if not missing:
        return []
    shown = f": {chars[:40]!r}" if chars else ""
    return [{"kind": "missing_glyphs", "characters": missing,
             "message": f"{missing} character(s){where} have no glyph in any font and are "
                        f"drawn as empty boxes{shown}; install a font that has them, or keep "
                        f"--fallback-fonts on"}]


def document_warnings(page_compression: list[float], missing_glyphs: int,
                      missing_glyph_chars: str) -> list[dict]:
    """Warnings for one rendered document: ``[{"kind", "message", ...}]``."""
    counts = page_counts(page_compression)
    densest = max(page_compression) if page_compression else None
    return (_compression_warnings(counts["lossy_pages"], counts["unreadable_pages"], densest, "")
            + _glyph_warning(missing_glyphs, "", missing_glyph_chars))


def dataset_warnings(counts: dict[str, int]) -> list[dict]:
    """Warnings for a generated dataset, from its manifest counts."""
    rows = counts.get("rows_with_missing_glyphs", 0)
    return (_compression_warnings(counts.get("lossy_pages", 0), counts.get("unreadable_pages", 0),
                                  None, f" of {counts.get('pages', 0)}")
            + _glyph_warning(counts.get("missing_glyphs", 0), f" in {rows} row(s)"))
