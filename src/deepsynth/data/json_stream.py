"""The records of a JSON document read in chunks: an array of objects, or an object whose
``data``, ``rows`` or ``examples`` member holds that array.

Nothing holds the whole document: ``json.JSONDecoder.raw_decode`` decodes one record at a
time from a buffer that holds that record and the chunk after it. A record longer than the
limit fails the file (the end of a record cannot be found without decoding it), as does
JSON that is not valid (:class:`JsonError`, which says where): the records before it have
been yielded. Line numbers are counted as the buffer is consumed, so each record is named by
the line it starts on. Sources read :func:`json_records`; chat files read :func:`json_items`,
which also gives each record's size and may leave records unbounded.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from typing import IO, Any, NamedTuple

from deepsynth.errors import SourceError

WRAPPER_KEYS = ("data", "rows", "examples")
_CHUNK = 2**16
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()
# A value decoded, or a decoding error, this close to the buffer's end may be the buffer cut
# inside a value (a number cut at "-2." decodes as -2; an escape cut after its backslash is
# reported 3 characters before the end): more is read and the value decoded again.
_NEAR_END = 16
_BOM = "\ufeff"


class JsonError(SourceError):
    """The document is not valid JSON (or not the shape read): ``line`` is where the record
    (or what was read) starts, ``at`` the line of the fault, ``reason`` the fault alone."""

    def __init__(self, message: str, line: int, at: int, reason: str):
        super().__init__(message)
        self.line, self.at, self.reason = line, at, reason


class Item(NamedTuple):
    value: Any
    line: int  # the line the record's text starts on (1-based)
    size: int  # UTF-8 bytes of the record's JSON text (0 unless sizes were asked for)


def utf8_size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def kind_of(value: Any) -> str:
    """A value's type as a message names it (JSON's names where there is one)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, (bytes, bytearray)):
        return "bytes"
    return f"a {type(value).__name__}"


class _Buffer:
    """Decoded text read on demand, the position in it, and the line of that position."""

    def __init__(self, handle: IO[bytes], name: str, limit: int | None, chunk: int,
                 sizes: bool = False):
        self.handle, self.name, self.limit, self.chunk = handle, name, limit, chunk
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.text, self.pos, self.line, self.eof = "", 0, 1, False
        self.sizes, self.size = sizes, 0  # size: UTF-8 bytes of the last value's text

    def fault(self, reason: str, what: str | None = None, line: int | None = None,
              at: int | None = None) -> JsonError:
        """The error "NAME line AT (WHAT): invalid JSON (REASON)"."""
        line = self.line if line is None else line
        at = line if at is None else at
        named = f" ({what})" if what else ""
        return JsonError(f"{self.where(at)}{named}: invalid JSON ({reason})", line, at, reason)

    def where(self, line: int | None = None) -> str:
        return f"{self.name} line {self.line if line is None else line}"

    def more(self, size: int = 0) -> bool:
        """Read ``size`` more bytes (a chunk by default), dropping what was consumed; False
        at the end."""
        if self.eof:
            return False
        data = self.handle.read(size or self.chunk)
        self.eof = not data
        try:
            chunk = self.decoder.decode(data, final=self.eof)
        except UnicodeDecodeError:
            raise SourceError(f"{self.where()}: invalid UTF-8 (a JSON document is read as "
                              f"one: convert the file to UTF-8)") from None
        if self.line == 1 and self.pos == 0 and not self.text:
            while chunk.startswith(_BOM):  # one byte-order mark, or several
                chunk = chunk[1:]
        self.text = self.text[self.pos:] + chunk
        self.pos = 0
        return bool(chunk) or not self.eof

    def peek(self) -> str:
        """The next character that is not whitespace ("" at the end), not consumed."""
        while True:
            end = _WHITESPACE.match(self.text, self.pos).end()
            self.line += self.text.count("\n", self.pos, end)
            self.pos = end
            if self.pos < len(self.text) or not self.more():
                return self.text[self.pos:self.pos + 1]

    def take(self) -> None:
        self.pos += 1

    def value(self, what: str) -> tuple[Any, int]:
        """The JSON value at the next non-whitespace character and the line it starts on;
        ``what`` names it in messages ("record 3", "member 'train'")."""
        self.peek()
        line = self.line
        while True:
            try:
                value, end = _DECODER.raw_decode(self.text, self.pos)
                if self.eof or end < len(self.text) - _NEAR_END:  # "-2" may be "-2.5e10"
                    break
            except json.JSONDecodeError as exc:
                cut = (exc.msg.startswith("Unterminated string")
                       or exc.pos >= len(self.text) - _NEAR_END)
                if self.eof or not cut:
                    at = line + self.text.count("\n", self.pos, exc.pos)
                    raise self.fault(exc.msg, what, line, at) from None
            except RecursionError:
                raise self.fault("nested too deeply", what, line) from None
            except ValueError as exc:  # an integer too long for Python to convert
                raise self.fault(str(exc), what, line) from None
            if self.limit is not None and len(self.text) - self.pos > self.limit:
                raise JsonError(f"{self.where(line)} ({what}): longer than {self.limit:,} "
                                f"bytes (the limit for one record)", line, line,
                                f"longer than {self.limit:,} bytes")
            self.more(max(self.chunk, len(self.text) - self.pos))  # doubling: linear in all
        if self.sizes:
            self.size = utf8_size(self.text[self.pos:end])
        self.line += self.text.count("\n", self.pos, end)
        self.pos = end
        return value, line


def _array(buffer: _Buffer) -> Iterator[Item]:
    """The elements of the array whose ``[`` is the next character, with their lines."""
    buffer.take()
    if buffer.peek() == "]":
        buffer.take()
        return
    record = 0
    while True:
        record += 1
        yield Item(*buffer.value(f"record {record}"), buffer.size)
        after = buffer.peek()
        if after in (",", "]"):
            buffer.take()
            if after == "]":
                return
            continue
        found = f"found {after!r}" if after else "the file ends (is it cut short?)"
        raise buffer.fault(f"expected ',' or ']', {found}", f"after record {record}")


def _wrapped(buffer: _Buffer) -> Iterator[Item]:
    """The array of the first ``data``/``rows``/``examples`` member of the object whose
    ``{`` is the next character; the members before it are decoded and dropped."""
    buffer.take()
    members = []
    while buffer.peek() not in ("}", ""):
        key, line = buffer.value("a member name")
        if not isinstance(key, str) or buffer.peek() != ":":
            raise SourceError(f"{buffer.where(line)}: invalid JSON (expected a member "
                              f"name and ':')")
        buffer.take()
        if key in WRAPPER_KEYS:
            if buffer.peek() != "[":
                held = kind_of(buffer.value(f"member {key!r}")[0])
                raise SourceError(f"{buffer.where(line)}: member {key!r} holds {held}, "
                                  f"not an array of records")
            yield from _array(buffer)
            return  # the members after the records are not read
        members.append(key)
        buffer.value(f"member {key!r}")
        if buffer.peek() == ",":
            buffer.take()
    raise SourceError(f"{buffer.name}: a JSON object without a 'data', 'rows' or 'examples' "
                      f"array (members: {', '.join(map(repr, members)) or 'none'}); expected "
                      f"an array of objects, such an object, or JSON Lines (one object a line)")


def json_records(handle: IO[bytes], name: str, limit: int,
                 chunk: int = _CHUNK) -> Iterator[tuple[Any, int]]:
    """Each record of the JSON document in ``handle`` with the line it starts on; an empty
    document has none. ``name`` names the file in messages; ``chunk`` bytes are read at a
    time; a record longer than ``limit`` bytes fails the file."""
    for item in json_items(handle, name, limit, chunk):
        yield item.value, item.line


def json_items(handle: IO[bytes], name: str, limit: int | None = None, chunk: int = _CHUNK,
               sizes: bool = False) -> Iterator[Item]:
    """What :func:`json_records` reads, as :class:`Item`s (with each record's size when
    ``sizes``); ``limit`` None: records of any length."""
    buffer = _Buffer(handle, name, limit, chunk, sizes)
    first = buffer.peek()
    if first == "":
        return
    if first == "[":
        yield from _array(buffer)
    elif first == "{":
        yield from _wrapped(buffer)
        return
    else:
        raise SourceError(f"{buffer.where()}: expected a JSON array of objects (or an "
                          f"object holding one, or JSON Lines); found {first!r}")
    if buffer.peek():
        raise JsonError(f"{buffer.where()}: more JSON after the array (a .json file holds "
                        f"one array, one object holding it, or JSON Lines)", buffer.line,
                        buffer.line, "more JSON after the array")
