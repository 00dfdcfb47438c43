"""Chat data for the generic trainer, ``/api/chat/*``: validate a chat file (with its
detected format and, for ShareGPT, Alpaca or a JSON array, the conversion report), preview a
record's labels."""

from __future__ import annotations

from flask import Blueprint, jsonify

from deepsynth.config import from_dict
from deepsynth.config.chat import ChatInspectConfig
from web_ui import schemas
from web_ui.app_context import workspace
from web_ui.requests_json import body, declares

blueprint = Blueprint("chat", __name__)


def _inspect_request():
    from deepsynth.chat.inspect import chat_encoder

    request = from_dict(ChatInspectConfig, body(), strict=True)
    path = workspace().existing_file(request.source, "source")
    encoder = chat_encoder(workspace().model_spec(request.model, chat=True), workspace().root,
                           request.chat_template, request.chat_reasoning,
                           request.chat_train_on, request.max_length)
    return request, path, encoder


@blueprint.post("/api/chat/validate")
@declares(body=schemas.chat_inspect_body, errors=(404, 422))
def validate():
    """Every problem of a chat JSONL file (line, field path, rule), warnings and a summary;
    the detected format, and the conversion report when the file is in another format."""
    from deepsynth.chat.inspect import validate_file

    request, path, encoder = _inspect_request()
    return jsonify(validate_file(path, encoder, request.source))


@blueprint.post("/api/chat/preview")
@declares(body=schemas.chat_inspect_body, errors=(404, 422))
def preview():
    """One line as the model is trained on it: segments marked trained or not."""
    from deepsynth.chat.inspect import preview_line

    request, path, encoder = _inspect_request()
    return jsonify(preview_line(path, request.line, encoder))
