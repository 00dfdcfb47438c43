"""Parquet shards in the Hugging Face layout, written atomically and in bounded memory.

A shard is written row group by row group to a hidden temp file and renamed into ``data/``
only when complete, so ``data/`` only ever holds finished shards.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

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


@functools.lru_cache(maxsize=1)
def dataset_features() -> Any:
    """The dataset's columns as ``datasets`` features (images use the Image feature)."""
    import datasets

    columns = {"id": datasets.Value("string"), "text": datasets.Value("string"),
               "summary": datasets.Value("string"),
               "images": datasets.List(datasets.Image())}
    columns.update({name: datasets.Value(dtype) for name, dtype in STAT_COLUMNS.items()})
    columns["text_sha256"] = datasets.Value("string")
    return datasets.Features(columns)


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
        self.schema = dataset_features().arrow_schema
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
