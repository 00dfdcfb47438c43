"""Previews for choosing a corpus and render options (``/api/render/*``,
``/api/sources/*``, ``/api/uploads``): render a text, look at a source's columns and first
rows, upload a corpus file. A dataset's rows and pages are in ``api_datasets``."""

from __future__ import annotations

import base64
import itertools
import math

from flask import Blueprint, jsonify, request

from deepsynth.config import RenderConfig, from_dict
from deepsynth.config.requests import SourcePreviewRequest
from deepsynth.data.fields import detect_fields
from deepsynth.data.file_formats import PREVIEW_LIMITS, describe_file
from deepsynth.data.sources import LocalSource, SourceError, open_source
from deepsynth.errors import ConfigError, ConfigRefused, DeepSynthError
from deepsynth.render.renderer import build_renderer
from deepsynth.render.tokens import vision_token_table
from deepsynth.render.variety import refuse_variety
from web_ui import schemas
from web_ui.app_context import workspace
from web_ui.requests_json import body, declares, parsed_body

blueprint = Blueprint("previews", __name__)
PREVIEW_ROWS = 5


@blueprint.post("/api/render/preview")
@declares(body=schemas.render_preview_body, errors=(404, 422))
def render_preview():
    data = body()
    text = data.pop("text", None)
    data = workspace().render_files(data)  # server files: only under the data root
    if not isinstance(text, str) or not text.strip():
        raise ConfigError("text", "is required (a non-empty string)", "text")
    if len(text) > schemas.MAX_PREVIEW_CHARS:
        raise ConfigError("text", f"is too long for a preview ({len(text)} characters)",
                          f"at most {schemas.MAX_PREVIEW_CHARS} characters")
    refuse_variety({k: True for k in data}, "a preview")
    config = from_dict(RenderConfig, data, strict=True)
    rendered = build_renderer(config).render(text)
    return jsonify(stats=rendered.stats.to_dict(), pages=[
        "data:image/png;base64," + base64.b64encode(page).decode() for page in rendered.pages],
        vision_tokens_per_page=vision_token_table(*config.size),
        page_compression=rendered.page_compression, warnings=rendered.warnings())


@blueprint.post("/api/sources/preview")
@declares(body=SourcePreviewRequest, errors=(404,))
def source_preview():
    data = parsed_body(SourcePreviewRequest)
    try:
        # Read less than a generation would: a preview shows a few rows, never a huge line.
        source = open_source(workspace().source(data.source), PREVIEW_LIMITS)
        splits = source.splits()
        rows = []
        for raw in itertools.islice(source.rows(splits[0]), PREVIEW_ROWS):
            rows.append({k: _shown(v) for k, v in raw.fields.items()}
                        if raw.fields is not None else {"error": raw.error})
        shown_format = describe_file(source.path, PREVIEW_LIMITS) if isinstance(
            source, LocalSource) and source.path.is_file() else None
    except SourceError as exc:
        raise ConfigError("source", str(exc), "a readable corpus") from None
    columns = sorted({k for row in rows for k in row if k != "error"})
    # A preset names its columns; a file's are guessed from their names, for the form to
    # offer (the generation itself still takes only the fields it is given).
    named = source.fields.text or source.fields.summary
    fields = source.fields if named else detect_fields(columns)
    return jsonify(splits=splits, columns=columns, rows=rows, format=shown_format,
                   fields={"text": fields.text, "summary": fields.summary, "id": fields.id},
                   fields_from="source" if named else "column names", chat=_chat(data.source))


def _chat(value: str) -> dict | None:
    """A local file of conversations (for the generic trainer, not for rendering): its chat
    format and conversion report, from its first records."""
    from deepsynth.chat.inspect import detect_chat

    try:
        path = workspace().file(value, "source")
    except DeepSynthError:  # a scheme (builtin:, hf:), not a file
        return None
    return detect_chat(path, value) if path.is_file() else None


def _shown(value):
    """A cell of a previewed row as JSON can carry it (bytes, such as page images, by size)."""
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    if isinstance(value, dict):
        return {str(k): _shown(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_shown(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # NaN and Infinity are not JSON
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


@blueprint.post("/api/uploads")
@declares(body=schemas.upload_body, body_media="multipart/form-data", status=201,
          errors=(422, 507))
def upload():
    sent = request.files.get("file")
    if sent is None:
        raise ConfigError("file", "is required (multipart form field 'file')", "a file")
    if not sent.filename:  # a part the document allows; the name is the rule of upload()
        raise ConfigRefused("file", "needs a file name", "a corpus file's name")
    target = workspace().save_upload(sent.filename, sent.stream)
    return jsonify(source=f"{workspace().uploads.name}/{target.name}",
                   bytes=target.stat().st_size), 201
