"""Parquet shards in the Hugging Face layout, written atomically and in bounded memory.

A shard is written row group by row group to a hidden temp file and renamed into ``data/``
only when complete, so ``data/`` only ever holds finished shards.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from deepsynth.atomic_files import fsync_dir

STAT_COLUMNS = {
    "num_pages": "int32", "num_lines": "int32", "num_chars": "int32",
    "missing_glyphs": "int32", "missing_glyph_chars": "string", "truncated_chars": "int32",
    "font_size": "int32", "text_tokens": "int32", "vision_tokens": "int32",
    "compression_ratio": "float32",
}
ROW_GROUP_ROWS = 32
TMP_DIR = ".partial"


_TEXT_COLUMNS = ("id", "text", "summary")


@functools.lru_cache(maxsize=1)
def arrow_schema() -> pa.Schema:
    """The shard schema, with the ``datasets`` feature types in its metadata (as ``datasets``
    writes them), so ``load_dataset`` decodes ``images`` as PIL images. Built by hand: importing
    ``datasets`` costs half a second per run."""
    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    fields = [pa.field(name, pa.string()) for name in _TEXT_COLUMNS]
    fields.append(pa.field("images", pa.list_(image)))
    fields += [pa.field(name, pa.type_for_alias(dtype)) for name, dtype in STAT_COLUMNS.items()]
    fields.append(pa.field("text_sha256", pa.string()))
    features = {f.name: {"dtype": str(f.type), "_type": "Value"} for f in fields}
    features["images"] = {"feature": {"_type": "Image"}, "_type": "List"}
    features["compression_ratio"]["dtype"] = "float32"
    metadata = {"huggingface": json.dumps({"info": {"features": features}})}
    return pa.schema(fields, metadata=metadata)


def card_features() -> list[dict]:
    """The features in the dataset card's YAML form."""
    return [{"name": f.name, "list": "image"} if f.name == "images" else
            {"name": f.name, "dtype": "float32" if f.name == "compression_ratio" else str(f.type)}
            for f in arrow_schema()]


def shard_name(split: str, index: int) -> str:
    return f"data/{split}-{index:05d}.parquet"


class ShardWriter:
    """Appends rows to one shard; :meth:`finish` makes it visible under its final name."""

    def __init__(self, folder: Path, split: str, index: int):
        self.folder = Path(folder)
        self.relative = shard_name(split, index)
        self.final = self.folder / self.relative
        self.tmp = self.folder / TMP_DIR / Path(self.relative).name
        self.tmp.parent.mkdir(parents=True, exist_ok=True)
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self.schema = arrow_schema()
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
        """Close, fsync and rename the shard; returns its manifest entry."""
        self._flush()
        self._writer.close()
        with open(self.tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(self.tmp, self.final)
        fsync_dir(self.final.parent)
        return {"file": self.relative, "rows": self.rows, "bytes": self.final.stat().st_size}

    def abort(self) -> None:
        try:
            self._writer.close()
        finally:
            self.tmp.unlink(missing_ok=True)


def read_column(folder: Path, shards: list[dict], column: str) -> list:
    """One column of finished shards, in order (resume rebuilds its dedup keys from it)."""
    values: list = []
    for shard in shards:
        values.extend(pq.read_table(Path(folder) / shard["file"], columns=[column])
                      .column(column).to_pylist())
    return values
