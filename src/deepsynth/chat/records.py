"""Records of a chat file, streamed: JSON Lines (one record per line), or one JSON array of
records (what LLaMA-Factory's and ms-swift's demo files are), whatever the file's suffix.

The container is told by the first character that is not whitespace: ``[`` is an array,
anything else is JSON Lines. A UTF-8 byte-order mark is dropped. An array is decoded one
element at a time from a growing buffer, so memory follows the largest record, not the
file; each record carries the line its text starts on, which is what messages name.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from deepsynth.errors import ConfigRefused, DeepSynthError

CHUNK = 1 << 16  # characters read at a time from an array file
JSONL, ARRAY = "jsonl", "json_array"
DEEP = "not valid JSON here: nested too deeply for the decoder"


@dataclass
class Record:
    line: int  # the file line the record starts on (1-based)
    index: int  # the record's place in the file (0-based)
    value: object = None
    error: str | None = None  # why the text is not JSON (value is then None)
    size: int = 0  # UTF-8 bytes of the record's JSON text


class _Prefix(io.RawIOBase):
    """The first ``limit`` bytes of a binary stream, then its end."""

    def __init__(self, raw, limit: int):
        self.raw, self.left = raw, limit

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.raw.read(min(len(buffer), self.left))
        self.left -= len(data)
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        self.raw.close()
        super().close()


def open_text(path: Path, max_bytes: int | None = None) -> TextIO:
    """The file as text (``.gz`` decompressed), refusing what is not there; with
    ``max_bytes``, only that many (decompressed) bytes of it."""
    path = Path(path)
    if not path.is_file():
        raise DeepSynthError(f"no chat file {path}")
    # Returned open, for the caller's with (hence no context manager here).
    raw = gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")  # noqa: SIM115
    if max_bytes is not None:
        raw = io.BufferedReader(_Prefix(raw, max_bytes))
    # utf-8-sig: a byte-order mark (Excel, Notepad) is dropped, not read as text of line 1;
    # errors="strict" (the default): a byte that is not UTF-8 refuses the file.
    return io.TextIOWrapper(raw, encoding="utf-8-sig")


@contextlib.contextmanager
def _refusing(path: Path):
    """Decoding and reading errors as refusals naming the file (never a traceback)."""
    try:
        yield
    except UnicodeDecodeError as exc:
        raise ConfigRefused("source", f"{path.name} is not UTF-8 text ({exc.reason} at byte "
                            f"{exc.start})", "a UTF-8 JSON Lines or JSON file") from None
    except (OSError, EOFError) as exc:  # a truncated or fake .gz
        raise ConfigRefused("source", f"{path.name} cannot be read: {exc}",
                            "a JSON Lines or JSON file, optionally gzipped") from None


def read_records(path: Path, max_bytes: int | None = None) -> Iterator[Record]:
    """The records of a chat file, JSON Lines or a JSON array, with their lines; with
    ``max_bytes``, those wholly within its first ``max_bytes`` bytes."""
    path = Path(path)
    with _refusing(path), open_text(path, max_bytes) as handle:
        first = _peek(handle)
        records = array_records(handle, first) if first.lstrip().startswith("[") else \
            line_records(_lines(first, handle))
        if max_bytes is None:
            yield from records
            return
        held = None  # one record behind: the last one read is dropped when the file was cut
        for record in records:
            if held is not None:
                yield held
            held = record
        if held is not None and handle.buffer.raw.left > 0:
            yield held


def container_of(path: Path) -> str:
    """JSON Lines or a JSON array, by the file's first character that is not whitespace."""
    with _refusing(Path(path)), open_text(path) as handle:
        return ARRAY if _peek(handle).lstrip().startswith("[") else JSONL


def _peek(handle: TextIO) -> str:
    """The start of the file up to its first non-whitespace character (or its end)."""
    text = ""
    while not text.strip():
        piece = handle.read(CHUNK)
        if not piece:
            break
        text += piece
    return text


def _lines(start: str, handle: TextIO) -> Iterator[str]:
    """The lines of ``start`` followed by the rest of ``handle``."""
    *whole, last = start.split("\n")  # not splitlines: U+2028 may be inside a JSON string
    yield from (piece + "\n" for piece in whole)
    last += handle.readline()
    if last:
        yield last
    yield from handle


def utf8_size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def line_records(lines: Iterable[str]) -> Iterator[Record]:
    """One record per non-blank line; a line that is not JSON is a record with its error."""
    index = 0
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            yield Record(number, index, json.loads(text), size=utf8_size(text))
        except ValueError as exc:
            yield Record(number, index, error=f"not valid JSON: {exc}", size=utf8_size(text))
        except RecursionError:
            yield Record(number, index, error=DEEP, size=utf8_size(text))
        index += 1


class _Buffer:
    """Text of the file read so far, its position, and the line number at that position."""

    def __init__(self, handle: TextIO, start: str):
        self.handle, self.text, self.pos, self.line, self.eof = handle, start, 0, 1, False

    def more(self) -> bool:
        """Read more text (as much again as is buffered: a huge record costs linear time)."""
        if self.eof:
            return False
        piece = self.handle.read(max(CHUNK, len(self.text) - self.pos))
        if not piece:
            self.eof = True
            return False
        self.text = self.text[self.pos:] + piece
        self.pos = 0
        return True

    def advance(self, to: int) -> None:
        self.line += self.text.count("\n", self.pos, to)
        self.pos = to

    def next_char(self) -> str:
        """The next character that is not whitespace ('' at the end), without taking it."""
        while True:
            stripped = len(self.text) - len(self.text[self.pos:].lstrip())
            self.advance(stripped)
            if self.pos < len(self.text) or not self.more():
                return self.text[self.pos:self.pos + 1]

    def where(self, offset: int) -> str:
        line = self.line + self.text.count("\n", self.pos, offset)
        return f"line {line}"


def array_records(handle: TextIO, start: str) -> Iterator[Record]:
    """The elements of a JSON array, decoded one by one. A syntax error ends the file with one
    record naming where it is: what follows cannot be read reliably."""
    decoder, buffer, index = json.JSONDecoder(), _Buffer(handle, start), 0
    buffer.next_char()
    buffer.advance(buffer.pos + 1)  # the opening [
    while True:
        char = buffer.next_char()
        if char == "]":
            buffer.advance(buffer.pos + 1)
            if buffer.next_char():
                yield Record(buffer.line, index, error="text after the end of the JSON array")
            return
        if index:
            if char != ",":
                yield Record(buffer.line, index, error=f"expected ',' or ']' between records "
                             f"at {buffer.where(buffer.pos)}, found {char or 'the end'!r}")
                return
            buffer.advance(buffer.pos + 1)
            char = buffer.next_char()
        if not char:
            yield Record(buffer.line, index, error="the JSON array is not closed (no ']')")
            return
        record = _decode(decoder, buffer, index)
        yield record
        if record.error:
            return
        index += 1


def _decode(decoder: json.JSONDecoder, buffer: _Buffer, index: int) -> Record:
    while True:
        try:
            value, end = decoder.raw_decode(buffer.text, buffer.pos)
        except ValueError as exc:
            if buffer.more():
                continue
            return Record(buffer.line, index, error=f"not valid JSON: {exc.msg} at "
                          f"{buffer.where(exc.pos)}")
        except RecursionError:
            return Record(buffer.line, index, error=DEEP)
        # A number or literal cut by the buffer's end decodes too: read on and decode again.
        if end == len(buffer.text) and buffer.more():
            continue
        record = Record(buffer.line, index, value,
                        size=utf8_size(buffer.text[buffer.pos:end]))
        buffer.advance(end)
        return record
