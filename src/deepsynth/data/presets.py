"""Benchmark summarization corpora as named presets: Hub ids, configs, fields, sizes, licenses.

Split sizes are the published ones (rows per split); they also give generation its ETA.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from deepsynth.data.fields import FieldMapping


@dataclass(frozen=True)
class BenchmarkPreset:
    name: str
    title: str
    source: str  # hf:ORG/NAME or builtin:NAME
    config: str | None
    text_field: str
    summary_field: str
    id_field: str | None
    sizes: dict[str, int] = field(default_factory=dict)
    license: str = ""
    license_id: str = "other"  # the Hub's license identifier for the dataset card
    description: str = ""

    @property
    def fields(self) -> FieldMapping:
        return FieldMapping(self.text_field, self.summary_field, self.id_field)

    def to_dict(self) -> dict:
        return {"name": self.name, "title": self.title, "source": self.source,
                "config": self.config, "text_field": self.text_field,
                "summary_field": self.summary_field, "id_field": self.id_field,
                "sizes": dict(self.sizes), "license": self.license, "license_id": self.license_id,
                "description": self.description, "offline": self.source.startswith("builtin:")}


PRESETS: dict[str, BenchmarkPreset] = {p.name: p for p in (
    BenchmarkPreset(
        "scitldr", "SciTLDR (built-in)", "builtin:scitldr", None, "source", "target",
        "paper_id", {"train": 1992, "validation": 619}, "Apache-2.0", "apache-2.0",
        "Scientific abstracts with one-sentence TLDRs; ships with DeepSynth, works offline."),
    BenchmarkPreset(
        "cnn_dailymail", "CNN/DailyMail", "hf:abisee/cnn_dailymail", "3.0.0", "article",
        "highlights", "id", {"train": 287113, "validation": 13368, "test": 11490},
        "Apache-2.0", "apache-2.0", "News articles with bullet-point highlights."),
    BenchmarkPreset(
        "xsum", "XSum", "hf:EdinburghNLP/xsum", None, "document", "summary", "id",
        {"train": 204045, "validation": 11332, "test": 11334},
        "research use (BBC articles; see the dataset card)", "other",
        "BBC articles with single-sentence summaries."),
    BenchmarkPreset(
        "arxiv", "arXiv", "hf:ccdv/arxiv-summarization", None, "article", "abstract", None,
        {"train": 203037, "validation": 6436, "test": 6440},
        "research use (arXiv papers; see the dataset card)", "other",
        "Long scientific papers with their abstracts (many pages per document)."),
    BenchmarkPreset(
        "gigaword", "Gigaword", "hf:Harvard/gigaword", None, "document", "summary", None,
        {"train": 3803957, "validation": 189651, "test": 1951},
        "LDC Gigaword terms (research use)", "other",
        "First sentences of news articles with their headlines."),
    BenchmarkPreset(
        "samsum", "SAMSum", "hf:Samsung/samsum", None, "dialogue", "summary", "id",
        {"train": 14732, "validation": 818, "test": 819}, "CC BY-NC-ND 4.0", "cc-by-nc-nd-4.0",
        "Messenger-style dialogues with third-person summaries."),
)}


def preset_names() -> list[str]:
    return list(PRESETS)
