"""Which columns of a corpus hold the text, the summary and the id.

Its own module so that presets (which name their corpora's columns) and sources (which read
them) both depend on it instead of on each other.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldMapping:
    text: str | None = None
    summary: str | None = None
    id: str | None = None

    def override(self, text: str | None, summary: str | None, id: str | None) -> FieldMapping:
        return FieldMapping(text or self.text, summary or self.summary, id or self.id)
