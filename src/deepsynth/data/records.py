"""From a source row to a document: field mapping, list joining, normalization and hashing."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from deepsynth.data.sources import FieldMapping
from deepsynth.errors import ConfigError, SourceError

_SPACE = re.compile(r"\s+")


@dataclass
class Document:
    id: str
    text: str
    summary: str


def content_key(text: str) -> bytes:
    """SHA-256 of the normalized text (NFC, whitespace collapsed): the deduplication key."""
    normalized = _SPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()
    return hashlib.sha256(normalized.encode("utf-8")).digest()


def _as_text(value: Any, first_only: bool) -> str | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        items = [str(v) for v in value if v is not None]
        if not items:
            return ""
        return items[0] if first_only else " ".join(items)
    return str(value)


def check_mapping(fields: FieldMapping, columns: list[str]) -> None:
    """Fail early, naming the field and the columns present, when a mapping cannot work."""
    present = ", ".join(columns)
    if not fields.text or not fields.summary:
        missing = "text_field" if not fields.text else "summary_field"
        raise ConfigError(missing, f"is required for this source; columns present: {present}",
                          present)
    for flag, name in (("text_field", fields.text), ("summary_field", fields.summary),
                       ("id_field", fields.id)):
        if name and name not in columns:
            raise ConfigError(flag, f"{name!r} is not a column of this source; columns "
                              f"present: {present}", present)


def to_document(fields: dict[str, Any], mapping: FieldMapping, default_id: str) -> Document:
    """Map one row; a missing field raises SourceError naming it and the columns present."""
    values = {}
    for flag, name, first_only in (("text_field", mapping.text, False),
                                   ("summary_field", mapping.summary, True)):
        value = _as_text(fields.get(name), first_only)
        if value is None:
            raise SourceError(f"{flag} {name!r} is missing; columns present: "
                              f"{', '.join(fields)}")
        values[flag] = value
    row_id = fields.get(mapping.id) if mapping.id else None
    return Document(str(row_id) if row_id is not None else default_id,
                    values["text_field"], values["summary_field"])
