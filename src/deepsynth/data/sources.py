"""Corpus sources: local files and folders, the built-in corpus, Hub datasets and presets.

A source lists its splits and streams each split's rows in order as :class:`RawRow` values,
starting at any position (that is how an interrupted generation resumes), each with where it
is (a local file's line and record, a Hub split's record). Nothing here holds a whole corpus
in memory; local files are read within bounds (:mod:`deepsynth.data.file_formats`).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

from deepsynth.config.dataset import normalize_split
from deepsynth.data.fields import FieldMapping
from deepsynth.data.file_formats import (
    GENERATION_LIMITS, ReadLimits, count_rows, format_of, read_file, unsupported,
)
from deepsynth.data.presets import PRESETS, preset_names
from deepsynth.errors import SourceError

log = logging.getLogger(__name__)
KNOWN_SPLITS = ("train", "validation", "test", "dev", "val", "valid")


@dataclass
class RawRow:
    """One source row: its position in the split, its fields or why it could not be read,
    and where it is, for messages (``corpus.csv line 15 (record 13)``)."""

    position: int
    fields: dict[str, Any] | None
    error: str | None = None
    where: str = ""


class Source(Protocol):
    name: str
    fields: FieldMapping

    def splits(self) -> list[str]: ...

    def known_splits(self) -> list[str] | None:
        """The splits when they are known without the network (else None)."""

    def rows(self, split: str, start: int = 0) -> Iterator[RawRow]: ...

    def num_rows(self, split: str) -> int | None: ...


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
            if format_of(self.path) is None:
                raise unsupported(self.path)
            return {"train": [self.path]}
        files = sorted(p for p in self.path.rglob("*")
                       if p.is_file() and format_of(p) and not p.name.startswith("."))
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
        for position, row in enumerate(chained):
            if position >= start:
                yield RawRow(position, row.fields, row.error, row.where)

    def num_rows(self, split: str) -> int | None:
        total = 0
        for path in self._files[split]:
            rows = count_rows(path, self.limits)
            if rows is None:
                return None
            total += rows
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
            yield RawRow(position, dict(fields), where=f"{split} record {position + 1}")

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
