"""Chat data for the generic trainer: validate a chat JSONL file, preview a line's labels."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from deepsynth.config import from_dict
from deepsynth.config.chat import ChatInspectConfig
from deepsynth.jobs.kinds import data_root_path, model_spec
from web_ui.errors import NotFound
from web_ui.requests_json import body

blueprint = Blueprint("chat", __name__)


def _inspect_request():
    from deepsynth.chat.inspect import chat_encoder

    root = current_app.config["DATA_ROOT"]
    request = from_dict(ChatInspectConfig, body())
    path = data_root_path(root, request.source, "source")
    if not path.is_file():
        raise NotFound(f"no file {request.source!r} under the data root")
    encoder = chat_encoder(model_spec(root, request.model, generic=True), root,
                           request.chat_template, request.chat_reasoning,
                           request.chat_train_on, request.max_length)
    return request, path, encoder


@blueprint.post("/api/chat/validate")
def validate():
    """Every problem of a chat JSONL file (line, field path, rule), warnings and a summary."""
    from deepsynth.chat.inspect import validate_file

    _, path, encoder = _inspect_request()
    return jsonify(validate_file(path, encoder).to_dict())


@blueprint.post("/api/chat/preview")
def preview():
    """One line as the model is trained on it: segments marked trained or not."""
    from deepsynth.chat.inspect import preview_line

    request, path, encoder = _inspect_request()
    return jsonify(preview_line(path, request.line, encoder))
