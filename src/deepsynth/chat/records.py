"""Records of a chat file, streamed: JSON Lines (one record per line), or one JSON array of
records (what LLaMA-Factory's and ms-swift's demo files are), whatever the file's suffix.

The container is told by the first character that is not whitespace: ``[`` is an array,
anything else is JSON Lines. A UTF-8 byte-order mark is dropped. An array is read by
:func:`deepsynth.data.json_stream.json_items` (the reader of JSON sources too), one element at
a time, so memory follows the largest record, not the file; each record carries the line its
text starts on, which is what messages name.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TextIO

from deepsynth.data.json_stream import JsonError, json_items, utf8_size
from deepsynth.errors import ConfigRefused, DeepSynthError, SourceError

CHUNK = 1 << 16  # characters read at a time to find the container
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


def open_bytes(path: Path, max_bytes: int | None = None) -> IO[bytes]:
    """The file's bytes (``.gz`` decompressed), refusing what is not there; with
    ``max_bytes``, only that many (decompressed) bytes of it (``.raw`` is then the
    :class:`_Prefix`, which says whether the file was cut)."""
    path = Path(path)
    if not path.is_file():
        raise DeepSynthError(f"no chat file {path}")
    # Returned open, for the caller's with (hence no context manager here).
    raw = gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")  # noqa: SIM115
    return raw if max_bytes is None else io.BufferedReader(_Prefix(raw, max_bytes))


def open_text(path: Path, max_bytes: int | None = None) -> TextIO:
    """The file as text, as :func:`open_bytes` reads it."""
    raw = open_bytes(path, max_bytes)
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
    except SourceError as exc:  # json_items: bytes that are not UTF-8, in an array
        raise ConfigRefused("source", str(exc), "a UTF-8 JSON Lines or JSON file") from None
    except (OSError, EOFError) as exc:  # a truncated or fake .gz
        raise ConfigRefused("source", f"{path.name} cannot be read: {exc}",
                            "a JSON Lines or JSON file, optionally gzipped") from None


def read_records(path: Path, max_bytes: int | None = None) -> Iterator[Record]:
    """The records of a chat file, JSON Lines or a JSON array, with their lines; with
    ``max_bytes``, those wholly within its first ``max_bytes`` bytes."""
    path = Path(path)
    array = container_of(path) == ARRAY
    opener = open_bytes if array else open_text
    with _refusing(path), opener(path, max_bytes) as handle:
        records = array_records(handle, path.name) if array else line_records(handle)
        if max_bytes is None:
            yield from records
            return
        prefix = (handle if array else handle.buffer).raw
        held = None  # one record behind: the last one read is dropped when the file was cut
        for record in records:
            if held is not None:
                yield held
            held = record
        if held is not None and prefix.left > 0:
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


def array_records(handle: IO[bytes], name: str) -> Iterator[Record]:
    """The elements of a JSON array, decoded one by one. A syntax error ends the file with one
    record naming where it is: what follows cannot be read reliably."""
    index = 0
    try:
        for item in json_items(handle, name, sizes=True):
            yield Record(item.line, index, item.value, size=item.size)
            index += 1
    except JsonError as exc:
        yield Record(exc.line, index, error=f"not valid JSON at line {exc.at}: {exc.reason}")
