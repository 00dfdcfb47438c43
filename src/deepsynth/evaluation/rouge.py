"""ROUGE-1/2/L with a tokenizer that keeps letters of every script.

``rouge_score``'s default tokenizer lowercases and drops every character outside [a-z0-9]
("était" becomes "tait", Chinese vanishes). Ours keeps Unicode letters and digits, and makes
each CJK character a token of its own (those scripts do not separate words with spaces).
"""

from __future__ import annotations

import re
import unicodedata

from rouge_score import rouge_scorer

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
_WORD = re.compile(r"[^\W_]+")
_CJK = re.compile(r"([\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff])")


class UnicodeTokenizer:
    def tokenize(self, text: str) -> list[str]:
        text = unicodedata.normalize("NFKC", text).lower()
        tokens: list[str] = []
        for word in _WORD.findall(text):
            tokens.extend(t for t in _CJK.split(word) if t)
        return tokens


_SCORER = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=False,
                                   tokenizer=UnicodeTokenizer())


def rouge(reference: str, prediction: str) -> dict[str, float]:
    """F-measures of ROUGE-1, ROUGE-2 and ROUGE-L for one pair."""
    scores = _SCORER.score(reference, prediction)
    return {name: round(scores[name].fmeasure, 4) for name in ROUGE_TYPES}


def mean_rouge(pairs: list[tuple[str, str]]) -> dict[str, float]:
    if not pairs:
        return {name: 0.0 for name in ROUGE_TYPES}
    rows = [rouge(r, p) for r, p in pairs]
    return {name: round(sum(row[name] for row in rows) / len(rows), 4) for name in ROUGE_TYPES}
