"""Corpus sources: local files and folders, the built-in corpus, Hub datasets and presets.

A source lists its splits and streams each split's rows in order as :class:`RawRow` values,
starting at any position (that is how an interrupted generation resumes). Nothing here holds
a whole corpus in memory, except JSON (not JSONL) files, which are parsed whole.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import json
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

from deepsynth.config.dataset import normalize_split
from deepsynth.data.fields import FieldMapping
from deepsynth.data.presets import PRESETS, preset_names
from deepsynth.errors import SourceError

log = logging.getLogger(__name__)
KNOWN_SPLITS = ("train", "validation", "test", "dev", "val", "valid")
FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv",
           ".tsv": "tsv", ".parquet": "parquet"}


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

    def rows(self, split: str, start: int = 0) -> Iterator[RawRow]: ...

    def num_rows(self, split: str) -> int | None: ...


def _format_of(path: Path) -> str | None:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
        if suffixes and suffixes[-1] == ".parquet":
            return None  # Parquet compresses internally; a gzipped file cannot be streamed
    return FORMATS.get(suffixes[-1]) if suffixes else None


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix.lower() == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8", newline="")


def _read_jsonl(path: Path) -> Iterator[tuple[dict | None, str | None]]:
    with _open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                yield None, f"{path.name} line {number}: invalid JSON ({exc.msg})"
                continue
            if isinstance(value, dict):
                yield value, None
            else:
                yield None, f"{path.name} line {number}: expected a JSON object"


def _read_json(path: Path) -> Iterator[tuple[dict | None, str | None]]:
    with _open_text(path) as handle:
        try:
            value = json.load(handle)
        except json.JSONDecodeError as exc:
            raise SourceError(f"{path}: invalid JSON at line {exc.lineno} ({exc.msg})") from None
    if isinstance(value, dict):
        value = next((v for k, v in value.items() if k in ("data", "rows", "examples")), value)
    if not isinstance(value, list):
        raise SourceError(f"{path}: expected a JSON array of objects (or JSONL)")
    for number, item in enumerate(value):
        yield (item, None) if isinstance(item, dict) else (
            None, f"{path.name} item {number}: expected a JSON object")


def _read_csv(path: Path, delimiter: str) -> Iterator[tuple[dict | None, str | None]]:
    csv.field_size_limit(sys.maxsize)
    with _open_text(path) as handle:
        for row in csv.DictReader(handle, delimiter=delimiter):
            yield dict(row), None


def _read_parquet(path: Path) -> Iterator[tuple[dict | None, str | None]]:
    import pyarrow.parquet as pq

    for batch in pq.ParquetFile(path).iter_batches(batch_size=256):
        for row in batch.to_pylist():
            yield row, None


def read_file(path: Path) -> Iterator[tuple[dict | None, str | None]]:
    """Rows of one local file as (fields, None) or (None, error naming the line)."""
    kind = _format_of(path)
    try:
        if kind == "jsonl":
            yield from _read_jsonl(path)
        elif kind == "json":
            yield from _read_json(path)
        elif kind in ("csv", "tsv"):
            yield from _read_csv(path, "," if kind == "csv" else "\t")
        elif kind == "parquet":
            yield from _read_parquet(path)
        else:
            raise SourceError(f"{path}: unsupported file type; use "
                              f"{', '.join(sorted(FORMATS))} (text formats optionally .gz)")
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"cannot read {path}: {exc}") from None
    except SourceError:
        raise
    except Exception as exc:  # pyarrow and csv raise their own types for corrupt files
        raise SourceError(f"cannot read {path}: {exc}") from None


def _split_of(path: Path) -> str | None:
    stem = path.name.split(".")[0].lower()
    for token in stem.replace("_", "-").split("-"):
        if token in KNOWN_SPLITS:
            return normalize_split(token)
    return None


class LocalSource:
    """A file (the ``train`` split) or a folder whose file names name the splits."""

    def __init__(self, path: Path, fields: FieldMapping = FieldMapping(), name: str = ""):
        self.path = Path(path).expanduser()
        self.name = name or str(self.path)
        self.fields = fields
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

    def rows(self, split: str, start: int = 0) -> Iterator[RawRow]:
        chained = itertools.chain.from_iterable(read_file(p) for p in self._files[split])
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
            elif kind == "jsonl":
                opener = gzip.open if path.suffix.lower() == ".gz" else open
                with opener(path, "rb") as handle:
                    total += sum(1 for line in handle if line.strip())
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


def builtin_source(name: str) -> LocalSource:
    if name != "scitldr":
        raise SourceError(f"unknown built-in corpus {name!r}; available: scitldr")
    folder = Path(str(resources.files("deepsynth.resources") / "scitldr"))
    return LocalSource(folder, FieldMapping("source", "target", "paper_id"), "builtin:scitldr")


def open_source(spec: str) -> Source:
    """``path`` | ``builtin:NAME`` | ``hf:ORG/NAME[:CONFIG]`` | ``preset:NAME``."""
    if spec.startswith("builtin:"):
        return builtin_source(spec.removeprefix("builtin:"))
    if spec.startswith("preset:"):
        name = spec.removeprefix("preset:")
        if name not in PRESETS:
            raise SourceError(f"unknown preset {name!r}; available: {', '.join(preset_names())}")
        preset = PRESETS[name]
        if preset.source.startswith("builtin:"):
            return builtin_source(preset.source.removeprefix("builtin:"))
        repo = preset.source.removeprefix("hf:")
        return HubSource(repo, preset.config, preset.fields, f"preset:{name}", preset.sizes)
    if spec.startswith(("hf:", "HF::")):
        body = spec.removeprefix("HF::").removeprefix("hf:")
        repo, _, config = body.partition(":")
        if not repo or ":" in config:
            raise SourceError(f"hf: sources are written hf:ORG/NAME[:CONFIG]; got {spec!r}")
        return HubSource(repo, config or None)
    return LocalSource(Path(spec))
