"""From a source row to a document: field mapping, value types, list joining, the text the
renderer draws (what "empty" and "duplicate" are decided on) and its hash.

A field's value becomes text only where that is lossless: a string as it is, a finite
number as its JSON text (``42``, ``0.5``, ``1e+20``). Anything else (a boolean, an object,
bytes, a date) is refused naming the field, its type and the row, never turned into a
Python repr; ``null`` is reported as null, a column the row lacks as missing.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from deepsynth.data.fields import FieldMapping, shown_name, shown_names
from deepsynth.data.json_stream import kind_of
from deepsynth.data.sources import RawRow
from deepsynth.errors import BadRow, ConfigError, SourceError
from deepsynth.render.layout import normalize_text

_SPACE = re.compile(r"\s+")


@dataclass
class Document:
    id: str
    text: str
    summary: str


def drawn_text(text: str) -> str:
    """The text as the renderer draws it (its normalization: NFC, one kind of line break,
    no invisible characters), whitespace runs collapsed to one space and stripped."""
    return _SPACE.sub(" ", normalize_text(text)).strip()


def is_blank(text: str) -> bool:
    """Whether the renderer would draw nothing: empty, whitespace, zero-width characters."""
    return not drawn_text(text)


def content_key(text: str) -> bytes:
    """SHA-256 of the drawn text (:func:`drawn_text`): the deduplication key, so texts
    whose pages are the same are duplicates, whatever invisible characters they hold."""
    return hashlib.sha256(drawn_text(text).encode("utf-8")).digest()


def _scalar_text(value: Any) -> str | None:
    """A string as it is, a finite number as its JSON text; None for any other value."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return json.dumps(value)
    return None


def _refusal(flag: str, name: str, value: Any, item: int | None = None) -> SourceError:
    what = f"{flag} {shown_name(name)}" + (f" item {item + 1}" if item is not None else "")
    kind = "not a finite number" if isinstance(value, float) else kind_of(value)
    return SourceError(f"{what} is {kind}; expected a string or a number (a list of them "
                       f"for the text and summary)")


def _field_text(fields: dict[str, Any], flag: str, name: str, first_only: bool) -> str:
    if name not in fields:
        raise SourceError(f"{flag} {shown_name(name)} is missing; columns present: "
                          f"{shown_names(fields)}")
    value = fields[name]
    if value is None:
        raise SourceError(f"{flag} {shown_name(name)} is null")
    if isinstance(value, (list, tuple)):
        items = []
        for index, item in enumerate(value):
            if item is None:
                continue  # null items are dropped
            text = _scalar_text(item)
            if text is None:
                raise _refusal(flag, name, item, index)
            items.append(text)
            if first_only:
                break
        return " ".join(items)
    text = _scalar_text(value)
    if text is None:
        raise _refusal(flag, name, value)
    return text


def check_mapping(fields: FieldMapping, columns: list[str]) -> None:
    """Fail early, naming the field and the columns present, when a mapping cannot work."""
    present = shown_names(columns)
    if not fields.text or not fields.summary:
        missing = "text_field" if not fields.text else "summary_field"
        raise ConfigError(missing, f"is required for this source; columns present: {present}",
                          present)
    for flag, name in (("text_field", fields.text), ("summary_field", fields.summary),
                       ("id_field", fields.id)):
        if name and name not in columns:
            raise ConfigError(flag, f"{shown_name(name)} is not a column of this source; "
                              f"columns present: {present}", present)


def to_document(fields: dict[str, Any], mapping: FieldMapping, default_id: str) -> Document:
    """Map one row; a missing, null or ill-typed field raises SourceError naming it. An id
    that is missing or null is ``default_id``."""
    text = _field_text(fields, "text_field", mapping.text, first_only=False)
    summary = _field_text(fields, "summary_field", mapping.summary, first_only=True)
    row_id = fields.get(mapping.id) if mapping.id else None
    if row_id is not None:
        shown = _scalar_text(row_id)
        if shown is None:
            raise _refusal("id_field", mapping.id, row_id)
        row_id = shown
    return Document(row_id if row_id is not None else default_id, text, summary)


def row_document(raw: RawRow, mapping: FieldMapping, default_id: str) -> Document:
    """The document of a source row; BadRow naming the row (its file line and record) when
    it could not be read or mapped."""
    if raw.fields is None:
        raise BadRow(raw.error)
    try:
        return to_document(raw.fields, mapping, default_id)
    except SourceError as exc:
        raise BadRow(f"{raw.where}: {exc}") from None


def first_row(rows: Iterable[RawRow], mapping: FieldMapping, on_error: str) -> RawRow | None:
    """The first readable row, its columns checked against the mapping (ConfigError). Under
    ``on_error`` fail, a first row the generation would stop at (unreadable, or a field
    missing, null or not text) raises BadRow naming it; under skip such rows are read
    past. The generation checks this before any work, and a submitted request at submit."""
    for raw in rows:
        if raw.fields is None and on_error != "fail":
            continue
        if raw.fields is not None:
            check_mapping(mapping, list(raw.fields))
        if on_error == "fail":
            row_document(raw, mapping, "first")
        return raw
    return None
