"""Parquet shards in the Hugging Face layout, written atomically and in bounded memory.

A shard is written row group by row group to a hidden temp file and renamed into ``data/``
only when complete, so ``data/`` only ever holds finished shards. Its manifest entry records
its size and SHA-256: readers check the size and the Parquet footer before use (cheap), a
resumed generation checks the full SHA-256 (see ``output_folder.drop_damaged_shards``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from deepsynth.atomic_files import fsync_dir
from deepsynth.errors import DatasetDamaged

STAT_COLUMNS = {
    "num_pages": "int32", "num_lines": "int32", "num_chars": "int32",
    "missing_glyphs": "int32", "missing_glyph_chars": "string", "truncated_chars": "int32",
    "font_size": "int32", "text_tokens": "int32", "vision_tokens": "int32",
    "compression_ratio": "float32",
}
ROW_GROUP_ROWS = 32
TMP_DIR = ".partial"


_TEXT_COLUMNS = ("id", "text", "summary")


# A row's sampled style under rendering variety (render/variety.py); the column exists only
# in datasets generated with variety, so a dataset without it is byte-identical to before.
RENDER_PARAMS = {"font": "string", "font_size": "int32", "line_spacing": "float64",
                 "margin": "int32"}


@functools.lru_cache(maxsize=2)
def arrow_schema(variety: bool = False) -> pa.Schema:
    """The shard schema, with the ``datasets`` feature types in its metadata (as ``datasets``
    writes them), so ``load_dataset`` decodes ``images`` as PIL images. Built by hand: importing
    ``datasets`` costs half a second per run. ``variety``: with the ``render_params`` column."""
    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    fields = [pa.field(name, pa.string()) for name in _TEXT_COLUMNS]
    fields.append(pa.field("images", pa.list_(image)))
    fields += [pa.field(name, pa.type_for_alias(dtype)) for name, dtype in STAT_COLUMNS.items()]
    fields.append(pa.field("text_sha256", pa.string()))
    if variety:
        fields.append(pa.field("render_params", pa.struct(
            [(name, pa.type_for_alias(dtype)) for name, dtype in RENDER_PARAMS.items()])))
    features = {f.name: {"dtype": str(f.type), "_type": "Value"} for f in fields}
    features["images"] = {"feature": {"_type": "Image"}, "_type": "List"}
    features["compression_ratio"]["dtype"] = "float32"
    if variety:  # a struct is a dict of features, as datasets writes it
        features["render_params"] = {name: {"dtype": dtype, "_type": "Value"}
                                     for name, dtype in RENDER_PARAMS.items()}
    metadata = {"huggingface": json.dumps({"info": {"features": features}})}
    return pa.schema(fields, metadata=metadata)


def card_features(variety: bool = False) -> list[dict]:
    """The features in the dataset card's YAML form."""
    return [{"name": f.name, "list": "image"} if f.name == "images" else
            {"name": f.name, "struct": [{"name": n, "dtype": d} for n, d in RENDER_PARAMS.items()]}
            if f.name == "render_params" else
            {"name": f.name, "dtype": "float32" if f.name == "compression_ratio" else str(f.type)}
            for f in arrow_schema(variety)]


def shard_name(split: str, index: int) -> str:
    return f"data/{split}-{index:05d}.parquet"


class ShardWriter:
    """Appends rows to one shard; :meth:`finish` makes it visible under its final name.
    ``attempt`` names the temp file apart, for writers that may run twice at once (a Ray
    task run again while its first attempt, on a lost node, still writes). ``variety``:
    rows carry ``render_params``."""

    def __init__(self, folder: Path, split: str, index: int, attempt: str | None = None,
                 variety: bool = False):
        self.folder = Path(folder)
        self.relative = shard_name(split, index)
        self.final = self.folder / self.relative
        name = Path(self.relative).name
        self.tmp = self.folder / TMP_DIR / (f"{name}.{attempt}" if attempt else name)
        self.tmp.parent.mkdir(parents=True, exist_ok=True)
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self.schema = arrow_schema(variety)
        self._writer = pq.ParquetWriter(self.tmp, self.schema, compression="none")
        self._buffer: list[dict] = []
        self.rows = 0

    def add(self, row: dict) -> None:
        self._buffer.append(row)
        self.rows += 1
        if len(self._buffer) >= ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self._buffer:
            table = pa.Table.from_pylist(self._buffer, schema=self.schema)
            self._writer.write_table(table)
            self._buffer = []

    def finish(self) -> dict:
        """Close, fsync and rename the shard; returns its manifest entry (file, rows, bytes,
        sha256). The hash re-reads the file just written, from the page cache."""
        self._flush()
        self._writer.close()
        with open(self.tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        sha256, size = file_sha256(self.tmp), self.tmp.stat().st_size
        os.replace(self.tmp, self.final)
        fsync_dir(self.final.parent)
        return {"file": self.relative, "rows": self.rows, "bytes": size, "sha256": sha256}

    def abort(self) -> None:
        try:
            self._writer.close()
        finally:
            self.tmp.unlink(missing_ok=True)


def file_sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _arrow_message(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:200]


def shard_problem(folder: Path, entry: dict, full: bool = False) -> str | None:
    """What is wrong with a finished shard, or None. The cheap check compares the size and
    reads the Parquet footer; ``full`` also compares the SHA-256, which catches bytes changed
    at the same size. An entry of an older manifest is checked for what it records (no
    ``sha256``: unverified)."""
    path = Path(folder) / entry["file"]
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return "is missing"
    if "bytes" in entry and size != entry["bytes"]:
        return f"has {size} bytes, the manifest records {entry['bytes']}"
    if full and "sha256" in entry and file_sha256(path) != entry["sha256"]:
        return "does not match its SHA-256 checksum"
    try:
        with pq.ParquetFile(path) as parquet:
            rows = parquet.metadata.num_rows
    except (OSError, pa.ArrowException) as exc:
        return f"has no readable Parquet footer ({_arrow_message(exc)})"
    if rows != entry["rows"]:
        return f"holds {rows} rows, the manifest records {entry['rows']}"
    return None


def damaged(folder: Path, entry: dict, problem: str) -> DatasetDamaged:
    return DatasetDamaged(Path(folder).resolve().name, entry["file"], problem)


def check_shards(folder: Path, shards: list[dict]) -> None:
    """The cheap check of each shard; the first bad one raises :class:`DatasetDamaged`."""
    for entry in shards:
        problem = shard_problem(folder, entry)
        if problem is not None:
            raise damaged(folder, entry, problem)


def read_shard(folder: Path, entry: dict, columns: list[str] | None = None) -> pa.Table:
    """A finished shard (or some of its columns), checked cheaply first; a shard that fails
    the check or cannot be decoded raises :class:`DatasetDamaged` naming it."""
    check_shards(folder, [entry])
    try:
        return pq.read_table(Path(folder) / entry["file"], columns=columns)
    except (OSError, pa.ArrowException) as exc:
        raise damaged(folder, entry, f"cannot be read ({_arrow_message(exc)})") from None


def read_column(folder: Path, shards: list[dict], column: str) -> list:
    """One column of finished shards, in order (resume rebuilds its dedup keys from it)."""
    values: list = []
    for shard in shards:
        values.extend(read_shard(folder, shard, [column]).column(column).to_pylist())
    return values
