"""A deterministic synthetic news-like corpus for the benchmarks (no network needed)."""

from __future__ import annotations

import json
import random
from pathlib import Path

_WORDS = """the of and to in a is that for on with as was by at from it he she they said
government market city officials people year new company percent police report state
national minister council economy bank prices workers election president court health
school children hospital water energy local public service plan week month today later
after before while during against between under over about more than most first last
announced expected reported according statement spokesman agency region district border
investigation support increase decrease growth decline record million billion thousand
project budget program policy decision meeting talks agreement leaders members residents
community families students teachers doctors farmers drivers passengers visitors""".split()
_SHORT = "the of and to in a is that for on as was by at it he she they we an or but not".split()
_NAMES = ("London", "Paris", "Berlin", "Madrid", "Tokyo", "Ottawa", "Nairobi", "Lima",
          "Smith", "Garcia", "Okafor", "Nakamura", "Ivanova", "Haddad", "Kowalski")


def _sentence(rng: random.Random) -> str:
    # Real prose is about half short function words; it keeps ~600 words on one page.
    words = [rng.choice(_SHORT if rng.random() < 0.5 else _WORDS)
             for _ in range(rng.randint(8, 20))]
    for _ in range(rng.randint(0, 2)):
        words[rng.randrange(len(words))] = rng.choice(_NAMES)
    if rng.random() < 0.3:
        words.insert(rng.randrange(len(words)), f"{rng.randint(2, 950)}")
    return " ".join(words).capitalize() + rng.choice(".....?!")


def article(rng: random.Random, words: int = 600) -> str:
    paragraphs, count = [], 0
    while count < words:
        paragraph = []
        for _ in range(rng.randint(6, 9)):
            sentence = _sentence(rng)
            paragraph.append(sentence)
            count += sentence.count(" ") + 1
            if count >= words:
                break
        paragraphs.append(" ".join(paragraph))
    return "\n".join(paragraphs)


def write_corpus(path: Path, documents: int, words: int = 580, seed: int = 0) -> Path:
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(documents):
            text = article(rng, words)
            row = {"id": f"news-{i}", "article": text, "highlights": _sentence(rng)}
            handle.write(json.dumps(row) + "\n")
    return path
