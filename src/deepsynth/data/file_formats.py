"""Local corpus files: JSON Lines, JSON, CSV, TSV (each optionally gzipped) and Parquet.

Each reader yields :class:`FileRow` values in file order: the fields, or why the row could
not be read, and where it is (``corpus.csv line 15 (record 13)``: the file line the record
starts on, and its index among the file's records, both from 1). Reading is bounded
(:class:`ReadLimits`): a JSONL or CSV line longer than the line limit is never held whole
(it is a bad row, like a line that is not UTF-8), and a JSON document is streamed one record
at a time (:mod:`deepsynth.data.json_stream`), each record bounded by the same limit, so a
small gzip that inflates to gigabytes cannot fill the memory. Byte-order marks at the start
of a file are dropped, and at the start of a JSON Lines line (files joined with ``cat``).
"""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NamedTuple

from deepsynth.data.fields import shown_name
from deepsynth.data.json_stream import WRAPPER_KEYS, json_records, kind_of
from deepsynth.errors import SourceError

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv",
           ".tsv": "tsv", ".parquet": "parquet"}
LABELS = {"jsonl": "JSON Lines", "json": "JSON", "csv": "CSV", "tsv": "TSV",
          "parquet": "Parquet"}
_BOM = b"\xef\xbb\xbf"
# Byte-order marks of encodings other than UTF-8 (UTF-32 LE first: it begins like UTF-16 LE).
_OTHER_BOMS = ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"),
               (b"\xff\xfe", "UTF-16"), (b"\xfe\xff", "UTF-16"))
_SKIP_CHUNK = 2**20
_SMALL_LINE = 2**20  # a lone line parsed to tell one record from a wrapper object


@dataclass(frozen=True)
class ReadLimits:
    """The longest JSONL/CSV line and JSON record read (a longer line is a bad row, skipped
    unread; a longer JSON record fails the file)."""

    line_bytes: int


GENERATION_LIMITS = ReadLimits(line_bytes=64 * 2**20)
PREVIEW_LIMITS = ReadLimits(line_bytes=2**20)
# A CSV record may span lines; the csv module's field limit (process-wide, so one value for
# every reader) bounds what it gathers to the generation line limit.
csv.field_size_limit(GENERATION_LIMITS.line_bytes)


class FileRow(NamedTuple):
    """One row of a file: its fields or the error (which starts with ``where``)."""

    fields: dict[str, Any] | None
    error: str | None
    where: str


def format_of(path: Path) -> str | None:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
        if suffixes and suffixes[-1] == ".parquet":
            return None  # Parquet compresses internally; a gzipped file cannot be streamed
    return FORMATS.get(suffixes[-1]) if suffixes else None


def unsupported(path: Path) -> SourceError:
    return SourceError(f"{path}: unsupported file type; use {', '.join(sorted(FORMATS))} "
                       f"(text formats optionally .gz)")


def _open_binary(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if path.suffix.lower() == ".gz" else open(path, "rb")


def _open_text_file(path: Path) -> IO[bytes]:
    """The file's bytes; a file in UTF-16 or UTF-32 (by its byte-order mark) is refused."""
    handle = _open_binary(path)
    try:
        head = handle.peek(4)[:4] if hasattr(handle, "peek") else b""
    except Exception:
        handle.close()
        raise
    for mark, encoding in _OTHER_BOMS:
        if head.startswith(mark):
            handle.close()
            raise SourceError(f"{path.name} is {encoding} (it starts with a {encoding} "
                              f"byte-order mark); text sources are read as UTF-8: save it as "
                              f"UTF-8 (in Excel: CSV UTF-8)")
    return handle


def raw_lines(handle: IO[bytes], limit: int) -> Iterator[bytes | None]:
    """Each line's bytes, or None for a line longer than ``limit`` bytes: that one is read
    through to its end in small chunks, never held whole."""
    while True:
        line = handle.readline(limit + 1)
        if not line:
            return
        if len(line) > limit and not line.endswith(b"\n"):
            while (rest := handle.readline(_SKIP_CHUNK)) and not rest.endswith(b"\n"):
                pass
            yield None
        else:
            yield line


def _drop_boms(line: bytes) -> bytes:
    while line.startswith(_BOM):
        line = line[len(_BOM):]
    return line


def _lines(path: Path, limit: int, every_line_bom: bool = False
           ) -> Iterator[tuple[int, str | None, str | None]]:
    """(line number, text, None), or (line number, None, why) for a line that is too long
    or not UTF-8 (a bad row of its own: the lines after it are still read). Byte-order
    marks are dropped from the first line, or from every line with ``every_line_bom``."""
    with _open_text_file(path) as handle:
        for number, line in enumerate(raw_lines(handle, limit), start=1):
            if line is None:
                yield number, None, f"longer than {limit:,} bytes (the line limit)"
                continue
            if number == 1 or every_line_bom:
                line = _drop_boms(line)
            try:
                yield number, line.decode("utf-8"), None
            except UnicodeDecodeError as exc:
                yield number, None, f"invalid UTF-8 (byte {exc.start + 1})"


def _where(path: Path, line: int, record: int) -> str:
    return f"{path.name} line {line} (record {record})"


def _read_jsonl(path: Path, limits: ReadLimits) -> Iterator[FileRow]:
    record = 0
    for number, line, error in _lines(path, limits.line_bytes, every_line_bom=True):
        if line is not None and not line.strip():
            continue
        record += 1
        where = _where(path, number, record)
        if error is None:
            try:
                value = json.loads(line.rstrip("\r\n"))  # a line break is no string's end
            except json.JSONDecodeError as exc:
                at = "column" if exc.msg.endswith(" at") else "at column"
                error = f"invalid JSON ({exc.msg} {at} {exc.colno})"
            except RecursionError:
                error = "invalid JSON (nested too deeply)"
            except ValueError as exc:  # an integer too long for Python to convert
                error = f"invalid JSON ({exc})"
            else:
                if not isinstance(value, dict):
                    error = f"expected a JSON object, found {kind_of(value)}"
        yield FileRow(value, None, where) if error is None else FileRow(
            None, f"{where}: {error}", where)


def json_lines_in_json(path: Path, limits: ReadLimits) -> bool:
    """Whether a .json file holds JSON Lines (transformers' XSum sample.json does): its first
    non-blank line is one object (``{`` to ``}``) and the next starts another, or it is the
    only line and holds no data/rows/examples array. Lines are not parsed here beyond a
    small single line, so a large document is never loaded whole to find out."""
    first = None
    for _, line, error in _lines(path, limits.line_bytes):
        text = line.strip() if line is not None else None
        if text == "":
            continue
        if first is not None:
            return text is not None and text.startswith("{")
        if text is None or not (text.startswith("{") and text.endswith("}")):
            return False
        first = text
    if first is None or len(first) > _SMALL_LINE:
        return False
    try:
        value = json.loads(first)
    except (ValueError, RecursionError):
        return False
    return isinstance(value, dict) and not any(isinstance(value.get(k), list)
                                               for k in WRAPPER_KEYS)


def describe_file(path: Path, limits: ReadLimits) -> str:
    """How the file is read, in words for the user: its format ("JSON Lines in a .json
    file" when a .json file holds JSON Lines), whether it is gzipped, and whether a UTF-8
    byte-order mark is dropped from its start."""
    kind = format_of(path)
    if kind is None:
        raise unsupported(path)
    label = LABELS[kind]
    if kind == "json":
        label = "JSON Lines in a .json file" if json_lines_in_json(path, limits) else \
            "JSON (an array of records)"
    if path.suffix.lower() == ".gz":
        label += ", gzipped"
    if kind != "parquet":
        with _open_text_file(path) as handle:
            if handle.read(len(_BOM)) == _BOM:
                label += ", UTF-8 byte-order mark dropped"
    return label


def _read_json(path: Path, limits: ReadLimits) -> Iterator[FileRow]:
    if json_lines_in_json(path, limits):
        yield from _read_jsonl(path, limits)
        return
    with _open_text_file(path) as handle:
        records = json_records(handle, path.name, limits.line_bytes)
        for record, (value, line) in enumerate(records, start=1):
            where = _where(path, line, record)
            yield FileRow(value, None, where) if isinstance(value, dict) else FileRow(
                None, f"{where}: expected a JSON object, found {kind_of(value)}", where)


def _header(path: Path, cells: list[str]) -> list[str]:
    seen = set()
    for name in cells:
        if name in seen:
            raise SourceError(f"{path.name} line 1: the header names column "
                              f"{shown_name(name)} twice")
        seen.add(name)
    return cells


def _read_csv(path: Path, delimiter: str, limits: ReadLimits) -> Iterator[FileRow]:
    """Rows of a CSV/TSV file. A bad line (too long, not UTF-8, holding NUL) is a bad row,
    reported before the record read after it; a bad header line fails the file. A record
    with fewer cells than the header is a bad row; extra cells must be empty."""
    bad: list[tuple[int, str]] = []
    taken: list[int] = []  # numbers of the lines the csv reader took for the current record

    def good_lines() -> Iterator[str]:
        for number, line, error in _lines(path, limits.line_bytes):
            if error is None and "\0" in line:
                error = "holds a NUL character"
            if error is None:
                taken.append(number)
                yield line
            elif number == 1:
                raise SourceError(f"{path.name} line 1: {error}; the first line is the header")
            else:
                bad.append((number, error))

    reader = csv.reader(good_lines(), delimiter=delimiter)
    record = 0
    try:
        header = _header(path, next(reader, []))
        while True:
            taken.clear()
            cells = next(reader, None)
            for number, error in bad:
                record += 1
                yield FileRow(None, f"{_where(path, number, record)}: {error}",
                              _where(path, number, record))
            bad.clear()
            if cells is None:
                return
            if cells and not header:
                raise SourceError(f"{path.name} line 1: empty; the first line is the header")
            if cells:  # a blank line is no record
                record += 1
                yield _csv_row(header, cells, _where(path, taken[0], record))
    except csv.Error as exc:
        raise SourceError(f"{path.name} line {taken[-1] if taken else 1}: {exc}") from None


def _csv_row(header: list[str], cells: list[str], where: str) -> FileRow:
    if len(cells) < len(header) or any(cells[len(header):]):
        count = f"{len(cells)} cell" + ("" if len(cells) == 1 else "s")
        return FileRow(None, f"{where}: {count}, the header has {len(header)}", where)
    return FileRow(dict(zip(header, cells)), None, where)


def _read_parquet(path: Path) -> Iterator[FileRow]:
    import pyarrow.parquet as pq

    record = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=256):
        for row in batch.to_pylist():
            record += 1
            yield FileRow(row, None, f"{path.name} record {record}")


def read_file(path: Path, limits: ReadLimits = GENERATION_LIMITS) -> Iterator[FileRow]:
    """Rows of one local file as :class:`FileRow` values."""
    kind = format_of(path)
    try:
        if kind == "jsonl":
            yield from _read_jsonl(path, limits)
        elif kind == "json":
            yield from _read_json(path, limits)
        elif kind in ("csv", "tsv"):
            yield from _read_csv(path, "," if kind == "csv" else "\t", limits)
        elif kind == "parquet":
            yield from _read_parquet(path)
        else:
            raise unsupported(path)
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise SourceError(f"cannot read {path}: {exc}") from None
    except SourceError:
        raise
    except Exception as exc:  # pyarrow and zlib raise their own types for corrupt files
        raise SourceError(f"cannot read {path}: {exc}") from None


def count_rows(path: Path, limits: ReadLimits) -> int | None:
    """The rows of a file when they can be counted without parsing: Parquet's metadata,
    or the non-blank lines of JSON Lines (a bad line is a row too); else None."""
    kind = format_of(path)
    if kind == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    if kind == "jsonl" or (kind == "json" and json_lines_in_json(path, limits)):
        with _open_text_file(path) as handle:
            return sum(1 for line in raw_lines(handle, limits.line_bytes)
                       if line is None or _drop_boms(line).strip())
    return None
