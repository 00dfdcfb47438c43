"""Corpus sources: local files and folders, the built-in corpus, Hub datasets and presets.

A source lists its splits and streams each split's rows in order as :class:`RawRow` values,
starting at any position (that is how an interrupted generation resumes). Nothing here holds
a whole corpus in memory, except JSON (not JSONL) files, which are parsed whole. Reading is
bounded (:class:`ReadLimits`): a JSONL or CSV line longer than the line limit is never held
whole (it is a bad row, like a line that is not UTF-8), and a JSON file larger than the JSON
limit is refused, so a small gzip that inflates to gigabytes cannot fill the memory.
"""

from __future__ import annotations

import csv
import gzip
import itertools
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import IO, Any, Protocol

from deepsynth.config.dataset import normalize_split
from deepsynth.data.fields import FieldMapping
from deepsynth.data.presets import PRESETS, preset_names
from deepsynth.errors import SourceError

log = logging.getLogger(__name__)
KNOWN_SPLITS = ("train", "validation", "test", "dev", "val", "valid")
FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv",
           ".tsv": "tsv", ".parquet": "parquet"}
_BOM = b"\xef\xbb\xbf"
_SKIP_CHUNK = 2**20


@dataclass(frozen=True)
class ReadLimits:
    """How much of a local file is read at once: the longest JSONL/CSV line (a longer one is
    a bad row, skipped unread), and the largest JSON file (parsed whole, so refused above)."""

    line_bytes: int
    json_bytes: int


GENERATION_LIMITS = ReadLimits(line_bytes=64 * 2**20, json_bytes=1024 * 2**20)
PREVIEW_LIMITS = ReadLimits(line_bytes=2**20, json_bytes=64 * 2**20)
# A CSV record may span lines; the csv module's field limit (process-wide, so one value for
# every reader) bounds what it gathers to the generation line limit.
csv.field_size_limit(GENERATION_LIMITS.line_bytes)


@dataclass
class RawRow:
    """One source row: its position in the split, its fields, or why it could not be read."""

    position: int
    fields: dict[str, Any] | None
    error: str | None = None


class Source(Protocol):
    name: str
    fields: FieldMapping

    def splits(self) -> list[str]: ...

    def known_splits(self) -> list[str] | None:
        """The splits when they are known without the network (else None)."""

    def rows(self, split: str, start: int = 0) -> Iterator[RawRow]: ...

    def num_rows(self, split: str) -> int | None: ...


Rows = Iterator[tuple[dict | None, str | None]]


def _format_of(path: Path) -> str | None:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
        if suffixes and suffixes[-1] == ".parquet":
            return None  # Parquet compresses internally; a gzipped file cannot be streamed
    return FORMATS.get(suffixes[-1]) if suffixes else None


def _open_binary(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if path.suffix.lower() == ".gz" else open(path, "rb")


def _raw_lines(handle: IO[bytes], limit: int) -> Iterator[bytes | None]:
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


def _lines(path: Path, limit: int) -> Iterator[tuple[int, str | None, str | None]]:
    """(line number, text, None), or (line number, None, why) for a line that is too long
    or not UTF-8 (a bad row of its own: the lines after it are still read)."""
    with _open_binary(path) as handle:
        for number, line in enumerate(_raw_lines(handle, limit), start=1):
            where = f"{path.name} line {number}"
            if line is None:
                yield number, None, f"{where}: longer than {limit:,} bytes (the line limit)"
                continue
            if number == 1 and line.startswith(_BOM):
                line = line[len(_BOM):]
            try:
                yield number, line.decode("utf-8"), None
            except UnicodeDecodeError as exc:
                yield number, None, f"{where}: invalid UTF-8 (byte {exc.start + 1})"


def _read_jsonl(path: Path, limits: ReadLimits) -> Rows:
    for number, line, error in _lines(path, limits.line_bytes):
        if error is not None:
            yield None, error
            continue
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            yield None, f"{path.name} line {number}: invalid JSON ({exc.msg})"
            continue
        except RecursionError:
            yield None, f"{path.name} line {number}: invalid JSON (nested too deeply)"
            continue
        if isinstance(value, dict):
            yield value, None
        else:
            yield None, f"{path.name} line {number}: expected a JSON object"


def _read_json(path: Path, limits: ReadLimits) -> Rows:
    with _open_binary(path) as handle:
        data = handle.read(limits.json_bytes + 1)
    if len(data) > limits.json_bytes:
        raise SourceError(f"{path}: larger than {limits.json_bytes:,} bytes, and a JSON file "
                          f"is parsed whole; use JSON Lines (one object a line) instead")
    try:
        value = json.loads(data.removeprefix(_BOM).decode("utf-8"))
    except json.JSONDecodeError as exc:
        raise SourceError(f"{path}: invalid JSON at line {exc.lineno} ({exc.msg})") from None
    except RecursionError:
        raise SourceError(f"{path}: invalid JSON (nested too deeply)") from None
    if isinstance(value, dict):
        value = next((v for k, v in value.items() if k in ("data", "rows", "examples")), value)
    if not isinstance(value, list):
        raise SourceError(f"{path}: expected a JSON array of objects (or JSONL)")
    for number, item in enumerate(value):
        yield (item, None) if isinstance(item, dict) else (
            None, f"{path.name} item {number}: expected a JSON object")


def _read_csv(path: Path, delimiter: str, limits: ReadLimits) -> Rows:
    """Rows of a CSV/TSV file. A bad line (too long, not UTF-8, holding NUL) is a bad row,
    reported before the record read after it; a bad header line fails the file."""
    bad: list[str] = []

    def good_lines() -> Iterator[str]:
        for number, line, error in _lines(path, limits.line_bytes):
            if error is None and "\0" in line:
                error = f"{path.name} line {number}: holds a NUL character"
            if error is None:
                yield line
            elif number == 1:
                raise SourceError(f"{error}; the first line is the header")
            else:
                bad.append(error)

    reader = csv.DictReader(good_lines(), delimiter=delimiter)
    try:
        for row in reader:
            yield from ((None, error) for error in bad)
            bad.clear()
            yield dict(row), None
    except csv.Error as exc:
        raise SourceError(f"{path.name} line {reader.line_num}: {exc}") from None
    yield from ((None, error) for error in bad)


def _read_parquet(path: Path) -> Rows:
    import pyarrow.parquet as pq

    for batch in pq.ParquetFile(path).iter_batches(batch_size=256):
        for row in batch.to_pylist():
            yield row, None


def read_file(path: Path, limits: ReadLimits = GENERATION_LIMITS) -> Rows:
    """Rows of one local file as (fields, None) or (None, error naming the line)."""
    kind = _format_of(path)
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
            raise SourceError(f"{path}: unsupported file type; use "
                              f"{', '.join(sorted(FORMATS))} (text formats optionally .gz)")
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise SourceError(f"cannot read {path}: {exc}") from None
    except SourceError:
        raise
    except Exception as exc:  # pyarrow and zlib raise their own types for corrupt files
        raise SourceError(f"cannot read {path}: {exc}") from None


def _split_of(path: Path) -> str | None:
    stem = path.name.split(".")[0].lower()
    for token in stem.replace("_", "-").split("-"):
        if token in KNOWN_SPLITS:
            return normalize_split(token)
    return None


class LocalSource:
    """A file (the ``train`` split) or a folder whose file names name the splits."""

    def __init__(self, path: Path, fields: FieldMapping = FieldMapping(), name: str = "",
                 limits: ReadLimits = GENERATION_LIMITS):
        self.path = Path(path).expanduser()
        self.name = name or str(self.path)
        self.fields = fields
        self.limits = limits
        if not self.path.exists():
            raise SourceError(f"source not found: {self.path}")
        self._files = self._group_files()

    def _group_files(self) -> dict[str, list[Path]]:
        if self.path.is_file():
            if _format_of(self.path) is None:
                raise SourceError(f"{self.path}: unsupported file type; use "
                                  f"{', '.join(sorted(FORMATS))} (text formats optionally .gz)")
            return {"train": [self.path]}
        files = sorted(p for p in self.path.rglob("*")
                       if p.is_file() and _format_of(p) and not p.name.startswith("."))
        if not files:
            raise SourceError(f"{self.path}: no JSONL, JSON, CSV or Parquet files in the folder")
        grouped: dict[str, list[Path]] = {}
        named = {p: _split_of(p) for p in files}
        for path in files:
            split = named[path] if any(named.values()) else "train"
            if split:
                grouped.setdefault(split, []).append(path)
            else:
                log.warning("ignoring %s: its name names no split (%s)", path,
                            ", ".join(KNOWN_SPLITS))
        return grouped

    def splits(self) -> list[str]:
        return list(self._files)

    def known_splits(self) -> list[str]:
        return self.splits()

    def rows(self, split: str, start: int = 0) -> Iterator[RawRow]:
        chained = itertools.chain.from_iterable(read_file(p, self.limits)
                                                for p in self._files[split])
        for position, (fields, error) in enumerate(chained):
            if position >= start:
                yield RawRow(position, fields, error)

    def num_rows(self, split: str) -> int | None:
        total = 0
        for path in self._files[split]:
            kind = _format_of(path)
            if kind == "parquet":
                import pyarrow.parquet as pq

                total += pq.ParquetFile(path).metadata.num_rows
            elif kind == "jsonl":  # a bad line (too long, not UTF-8) is a row too
                with _open_binary(path) as handle:
                    total += sum(1 for line in _raw_lines(handle, self.limits.line_bytes)
                                 if line is None or line.strip())
            else:
                return None
        return total


def hub_repo(repo: str) -> str:
    """``repo`` when it can only mean a Hub repository: ORG/NAME, and no file or folder of
    that name here (``datasets.load_dataset`` would read a local folder instead, from any
    path a request names)."""
    from deepsynth.config.spec import hub_repo_id

    if hub_repo_id(repo):
        raise SourceError(f"hf: sources are written hf:ORG/NAME[:CONFIG] (a Hub repository, "
                          f"never a path); got {repo!r}")
    if Path(repo).exists():
        raise SourceError(f"hf:{repo} names a Hub repository, but {repo!r} is also a local "
                          f"path, which datasets would read instead; use a local source "
                          f"under the data root")
    return repo


class HubSource:
    """A Hub dataset read in streaming mode through ``datasets.load_dataset``."""

    def __init__(self, repo: str, config: str | None, fields: FieldMapping = FieldMapping(),
                 name: str = "", sizes: dict[str, int] | None = None):
        self.repo, self.config = hub_repo(repo), config
        self.name = name or f"hf:{repo}" + (f":{config}" if config else "")
        self.fields = fields
        self._sizes = sizes or {}
        self._split_names: dict[str, str] | None = None

    def _load_error(self, exc: Exception) -> SourceError:
        return SourceError(f"cannot load Hub dataset {self.repo!r}"
                           f"{f' (config {self.config!r})' if self.config else ''}: "
                           f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")

    def _names(self) -> dict[str, str]:
        if self._split_names is None:
            import datasets

            try:
                names = datasets.get_dataset_split_names(self.repo, self.config)
            except Exception as exc:
                raise self._load_error(exc) from None
            self._split_names = {normalize_split(n): n for n in names}
        return self._split_names

    def splits(self) -> list[str]:
        return list(self._names())

    def known_splits(self) -> list[str] | None:
        """A preset's published splits; the Hub's answer is needed for any other."""
        return [normalize_split(name) for name in self._sizes] or None

    def rows(self, split: str, start: int = 0) -> Iterator[RawRow]:
        import datasets

        try:
            stream = datasets.load_dataset(self.repo, self.config, split=self._names()[split],
                                           streaming=True)
        except Exception as exc:
            raise self._load_error(exc) from None
        if start:
            stream = stream.skip(start)
        for position, fields in enumerate(stream, start=start):
            yield RawRow(position, dict(fields))

    def num_rows(self, split: str) -> int | None:
        return self._sizes.get(split)


def builtin_source(name: str, limits: ReadLimits = GENERATION_LIMITS) -> LocalSource:
    if name != "scitldr":
        raise SourceError(f"unknown built-in corpus {name!r}; available: scitldr")
    folder = Path(str(resources.files("deepsynth.resources") / "scitldr"))
    return LocalSource(folder, FieldMapping("source", "target", "paper_id"), "builtin:scitldr",
                       limits)


def open_source(spec: str, limits: ReadLimits = GENERATION_LIMITS) -> Source:
    """``path`` | ``builtin:NAME`` | ``hf:ORG/NAME[:CONFIG]`` | ``preset:NAME``; local files
    are read within ``limits`` (a preview reads less than a generation)."""
    if spec.startswith("builtin:"):
        return builtin_source(spec.removeprefix("builtin:"), limits)
    if spec.startswith("preset:"):
        name = spec.removeprefix("preset:")
        if name not in PRESETS:
            raise SourceError(f"unknown preset {name!r}; available: {', '.join(preset_names())}")
        preset = PRESETS[name]
        if preset.source.startswith("builtin:"):
            return builtin_source(preset.source.removeprefix("builtin:"), limits)
        repo = preset.source.removeprefix("hf:")
        return HubSource(repo, preset.config, preset.fields, f"preset:{name}", preset.sizes)
    if spec.startswith(("hf:", "HF::")):
        body = spec.removeprefix("HF::").removeprefix("hf:")
        repo, _, config = body.partition(":")
        if not repo or ":" in config:
            raise SourceError(f"hf: sources are written hf:ORG/NAME[:CONFIG]; got {spec!r}")
        return HubSource(repo, config or None)
    return LocalSource(Path(spec), limits=limits)
