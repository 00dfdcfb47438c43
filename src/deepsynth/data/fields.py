"""Which columns of a corpus hold the text, the summary and the id (and a guess from the
column names when a source names none), and how messages show a column's name.

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


# Column names that usually hold each field, most telling first: the presets' columns and
# the common names of summarization corpora. Compared case-insensitively.
TEXT_NAMES = ("text", "document", "article", "body", "content", "dialogue", "source", "input")
SUMMARY_NAMES = ("summary", "abstract", "highlights", "tldr", "headline", "target", "output")
ID_NAMES = ("id", "doc_id", "document_id", "paper_id", "article_id", "uid", "guid")


def detect_fields(columns) -> FieldMapping:
    """The columns that most likely hold the text, summary and id, by their names (None for
    a field no column is named like); a guess to offer, never applied without the user."""
    by_name = {str(c).strip().lower(): c for c in reversed(list(columns))}
    taken: set = set()

    def pick(names):
        for name in names:
            column = by_name.get(name)
            if column is not None and column not in taken:
                taken.add(column)
                return column
        return None
    return FieldMapping(pick(TEXT_NAMES), pick(SUMMARY_NAMES), pick(ID_NAMES))


def visible(name: object) -> str:
    """A column name with the characters that draw nothing (a byte-order mark, zero-width
    spaces, control characters, no-break spaces) as repr-style escapes (``\\ufeffdocument``),
    so that a name that only looks like another can be told from it in a message."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in str(name))


def shown_name(name: object) -> str:
    """A column name in a sentence: visible, in quotes (``'\\ufeffdocument'``)."""
    return f"'{visible(name)}'"


def shown_names(names) -> str:
    """Column names for a list in a message: visible, separated by commas, and quoted only
    when one is empty or starts or ends with a space."""
    return ", ".join(shown_name(n) if not str(n) or str(n) != str(n).strip(" ") else visible(n)
                     for n in names)
