"""Previews for choosing a corpus and render options: render a text, look at a source's
columns and first rows, upload a corpus file, browse a dataset's rows and pages."""

from __future__ import annotations

import base64
import io
import itertools
import re
from pathlib import Path

import pyarrow.parquet as pq
from flask import Blueprint, Response, current_app, jsonify, request

from deepsynth.config import RenderConfig, from_dict
from deepsynth.data.manifest import Manifest
from deepsynth.data.sources import FORMATS, SourceError, open_source
from deepsynth.errors import ConfigError
from deepsynth.jobs.kinds import check_name, data_root_path
from deepsynth.paths import datasets_dir
from deepsynth.render.renderer import build_renderer
from web_ui.api_datasets import resolve_source
from web_ui.errors import NotFound
from web_ui.requests_json import body, int_arg, only

blueprint = Blueprint("previews", __name__)
PREVIEW_ROWS = 5
MAX_PREVIEW_CHARS = 50_000
_UPLOAD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,120}$")


@blueprint.post("/api/render/preview")
def render_preview():
    data = body()
    text = data.pop("text", None)
    if data.get("tokenizer") is not None:  # a server file: only under the data root
        data["tokenizer"] = str(data_root_path(current_app.config["DATA_ROOT"],
                                               data["tokenizer"], "tokenizer"))
    if not isinstance(text, str) or not text.strip():
        raise ConfigError("text", "is required (a non-empty string)", "text")
    if len(text) > MAX_PREVIEW_CHARS:
        raise ConfigError("text", f"is too long for a preview ({len(text)} characters)",
                          f"at most {MAX_PREVIEW_CHARS} characters")
    rendered = build_renderer(from_dict(RenderConfig, data)).render(text)
    return jsonify(stats=rendered.stats.to_dict(), pages=[
        "data:image/png;base64," + base64.b64encode(page).decode() for page in rendered.pages])


@blueprint.post("/api/sources/preview")
def source_preview():
    data = only(body(), ("source",))
    root = current_app.config["DATA_ROOT"]
    try:
        source = open_source(resolve_source(root, data.get("source", "")))
        splits = source.splits()
        rows = []
        for raw in itertools.islice(source.rows(splits[0]), PREVIEW_ROWS):
            rows.append({k: _shown(v) for k, v in raw.fields.items()}
                        if raw.fields is not None else {"error": raw.error})
    except SourceError as exc:
        raise ConfigError("source", str(exc), "a readable corpus") from None
    columns = sorted({k for row in rows for k in row if k != "error"})
    return jsonify(splits=splits, columns=columns, rows=rows,
                   fields={"text": source.fields.text, "summary": source.fields.summary,
                           "id": source.fields.id})


def _shown(value):
    """A cell of a previewed row as JSON can carry it (bytes, such as page images, by size)."""
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    if isinstance(value, dict):
        return {str(k): _shown(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_shown(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


@blueprint.post("/api/uploads")
def upload():
    sent = request.files.get("file")
    if sent is None or not sent.filename:
        raise ConfigError("file", "is required (multipart form field 'file')", "a file")
    name = sent.filename
    suffixes = tuple(FORMATS) + tuple(ext + ".gz" for ext in FORMATS)
    if Path(name).name != name or not _UPLOAD_NAME.match(name) or not name.lower().endswith(
            suffixes):
        raise ConfigError("file", f"must be a corpus file named with letters, digits, . _ - "
                          f"and one of {', '.join(sorted(FORMATS))}; got {name!r}",
                          ", ".join(sorted(FORMATS)))
    folder = current_app.config["DATA_ROOT"] / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    sent.save(folder / name)
    return jsonify(source=f"uploads/{name}", bytes=(folder / name).stat().st_size), 201


def _dataset(name: str) -> tuple[Path, Manifest]:
    folder = datasets_dir(current_app.config["DATA_ROOT"]) / check_name("name", name)
    manifest = Manifest.load(folder) if folder.is_dir() else None
    if manifest is None:
        raise NotFound(f"no dataset {name!r}")
    return folder, manifest


def _check_split(manifest: Manifest, split: str) -> None:
    if split not in manifest.splits:
        raise ConfigError("split", f"must be one of {', '.join(manifest.splits)}; got "
                          f"{split!r}", ", ".join(manifest.splits))


def _row(folder: Path, manifest: Manifest, split: str, index: int) -> dict:
    _check_split(manifest, split)
    position = index
    for shard in manifest.splits[split].shards:
        if position < shard["rows"]:
            table = pq.read_table(folder / shard["file"])
            return table.slice(position, 1).to_pylist()[0]
        position -= shard["rows"]
    raise NotFound(f"split {split!r} has no row {index}")


@blueprint.get("/api/datasets/<name>/samples")
def samples(name: str):
    folder, manifest = _dataset(name)
    split = request.args.get("split") or next(iter(manifest.splits))
    _check_split(manifest, split)
    offset, limit = int_arg("offset", 0), int_arg("limit", 10, 1, 100)
    total = manifest.splits[split].rows if split in manifest.splits else 0
    rows = []
    for index in range(offset, min(offset + limit, total)):
        row = _row(folder, manifest, split, index)
        pages = row.pop("images")
        rows.append({**row, "index": index, "pages": len(pages)})
    return jsonify(split=split, samples=rows, total=total, offset=offset, limit=limit)


@blueprint.get("/api/datasets/<name>/samples/<int:index>/pages/<int:page>.png")
def page_png(name: str, index: int, page: int):
    folder, manifest = _dataset(name)
    split = request.args.get("split") or next(iter(manifest.splits))
    pages = _row(folder, manifest, split, index)["images"]
    if page >= len(pages):
        raise NotFound(f"row {index} has {len(pages)} pages")
    return Response(io.BytesIO(pages[page]["bytes"]).getvalue(), mimetype="image/png")
